//! Authorization: who may do what, decided by Cedar policies.
//!
//! Terms:
//! - **Principal**: who asks. [`Principal::Anonymous`] (Cedar
//!   `Anonymous::"anonymous"`) on public endpoints, or a signed-in
//!   [`Principal::User`] (Cedar `User::"<uuid>"` with attributes `role`,
//!   `active` and, for partner users, `partner`).
//! - **Role**: a Cedar `Role` entity that is the user's parent. Roles are
//!   grouped: `partner_admin` and `partner_staff` are in `partner_user`;
//!   `adjuster` and `admin` are in `insurer_staff`. A policy that says
//!   `principal in Role::"partner_user"` therefore covers both partner roles.
//!   The closure is taken once at start-up: a user's parents are its role
//!   and that role's group, so a decision needs no `Role` entities.
//! - **Action**: what is asked, one [`Action`] per Cedar `Action::"<name>"`.
//! - **Resource**: what it is asked about: a [`Resource::Partner`],
//!   [`Resource::Policy`], [`Resource::Claim`], [`Resource::Voucher`],
//!   [`Resource::User`], or a [`Resource::Collection`] for list and create
//!   endpoints that have no single resource. Ownership (the customer, the
//!   partner, the allocated technician) is carried as attributes holding
//!   entity uids, so a policy can say `resource.customer == principal`.
//!
//! The policies live in `assets/policies/`: `schema.cedarschema` declares the
//! entity types and actions, and the `*.cedar` files (one per domain, every
//! policy named by an `@id("...")` annotation) say who may do what.
//! [`Authorizer::embedded`] uses the copies compiled into the binary;
//! [`Authorizer::from_dir`] reads an operator's customised directory.
//!
//! Start-up: the schema is parsed; each policy file is parsed and every
//! policy renamed to its `@id`; the whole set is validated against the schema
//! in strict mode, and validator warnings are refused too. So a typo in an
//! attribute, entity type or action name stops the server with an
//! [`AuthzError`] naming the file and policy, instead of silently denying.
//! The loader also checks that the schema declares exactly the actions of
//! [`Action::ALL`] and that `Role::"..."` literals name a known role.
//!
//! A decision ([`Authorizer::is_allowed`]):
//! 1. The principal and resource types are checked against the schema's
//!    `appliesTo` for the action (precomputed at start-up). A mismatch is a
//!    handler bug: logged and denied.
//! 2. The principal and the resource become (at most) two Cedar entities
//!    built for this one request. Entities named by attributes, such as the
//!    customer of a claim, are referenced by uid only, which is all an `==`
//!    needs.
//! 3. Cedar evaluates the policies that can apply to this action and kind
//!    of caller, sliced at start-up (see `slices`, which also explains when
//!    the user's role parents are loaded).
//!
//! Semantics are Cedar's: deny by default, any matching `forbid` overrides
//! every `permit`, and a policy whose condition errors is skipped (so a
//! guard in a `forbid` must only read attributes that always exist).
//!
//! Cost: about 50,000 instructions per decision in a release build (an
//! authenticated claim read), i.e. well under 10 µs on an idle core; the
//! `decision_cost` test prints the time of the build it runs in.

mod action;
mod error;
mod slices;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    Authorizer as CedarAuthorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicyId as CedarPolicyId, PolicySet, Request, Response, RestrictedExpression,
    Schema, ValidationMode, Validator,
};
use glassguard_protocol::{ClaimId, PartnerId, PolicyId, Role, UserId, VoucherId};
use uuid::Uuid;

pub use action::Action;
pub use error::AuthzError;
use slices::Slices;

/// The schema file's name, in the embedded set and in a policy directory.
pub const SCHEMA_FILE: &str = "schema.cedarschema";

const EMBEDDED_SCHEMA: &str = include_str!("../../../assets/policies/schema.cedarschema");

/// The embedded policy files. A test checks this list against the directory,
/// so a new file cannot be forgotten here.
const EMBEDDED_POLICIES: &[(&str, &str)] = &[
    (
        "bot.cedar",
        include_str!("../../../assets/policies/bot.cedar"),
    ),
    (
        "customers.cedar",
        include_str!("../../../assets/policies/customers.cedar"),
    ),
    (
        "forbid.cedar",
        include_str!("../../../assets/policies/forbid.cedar"),
    ),
    (
        "insurer.cedar",
        include_str!("../../../assets/policies/insurer.cedar"),
    ),
    (
        "partners.cedar",
        include_str!("../../../assets/policies/partners.cedar"),
    ),
    (
        "public.cedar",
        include_str!("../../../assets/policies/public.cedar"),
    ),
    (
        "sync.cedar",
        include_str!("../../../assets/policies/sync.cedar"),
    ),
    (
        "technicians.cedar",
        include_str!("../../../assets/policies/technicians.cedar"),
    ),
    (
        "uploads.cedar",
        include_str!("../../../assets/policies/uploads.cedar"),
    ),
];

/// The id of the single `Anonymous` entity.
const ANONYMOUS_ID: &str = "anonymous";

/// Role groups: (group id, member roles).
const ROLE_GROUPS: [(&str, &[Role]); 2] = [
    ("partner_user", &[Role::PartnerAdmin, Role::PartnerStaff]),
    ("insurer_staff", &[Role::Adjuster, Role::Admin]),
];

/// Who asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    /// Nobody signed in (public endpoints).
    Anonymous,
    /// A signed-in user.
    User {
        /// The user.
        id: UserId,
        /// Their role.
        role: Role,
        /// The partner a partner user belongs to.
        partner: Option<PartnerId>,
        /// False once the account is deactivated.
        active: bool,
    },
}

/// What is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A list or create endpoint without a single resource, e.g. `"claims"`.
    Collection(&'static str),
    /// A partner.
    Partner {
        /// The partner.
        id: PartnerId,
        /// `"pending"`, `"approved"` or `"suspended"`.
        status: &'static str,
    },
    /// A policy.
    Policy {
        /// The policy.
        id: PolicyId,
        /// The customer who owns it.
        customer: UserId,
        /// The partner who sold it.
        partner: Option<PartnerId>,
    },
    /// A claim.
    Claim {
        /// The claim.
        id: ClaimId,
        /// The customer who filed it.
        customer: UserId,
        /// The partner who sold the policy.
        partner: Option<PartnerId>,
        /// The technician it is allocated to.
        technician: Option<UserId>,
    },
    /// A voucher.
    Voucher {
        /// The voucher.
        id: VoucherId,
        /// The customer it was issued to.
        customer: UserId,
    },
    /// A user (e.g. the caller's own profile).
    User {
        /// The user.
        id: UserId,
    },
}

impl Principal {
    /// The Cedar entity type.
    fn cedar_type(&self) -> &'static str {
        match self {
            Principal::Anonymous => "Anonymous",
            Principal::User { .. } => "User",
        }
    }
}

impl Resource {
    /// The Cedar entity type.
    fn cedar_type(&self) -> &'static str {
        match self {
            Resource::Collection(_) => "Collection",
            Resource::Partner { .. } => "Partner",
            Resource::Policy { .. } => "Policy",
            Resource::Claim { .. } => "Claim",
            Resource::Voucher { .. } => "Voucher",
            Resource::User { .. } => "User",
        }
    }
}

/// Decides requests against a validated policy set. Cheap to clone (an
/// `Arc` inside); build one at start-up and share it.
#[derive(Clone)]
pub struct Authorizer {
    inner: Arc<Inner>,
}

struct Inner {
    /// The schema and the whole policy set, for the tests' reference
    /// decisions (decisions use `slices`).
    #[cfg(test)]
    schema: Schema,
    #[cfg(test)]
    policies: PolicySet,
    /// The policies that can apply, per action and kind of caller.
    slices: Slices,
    cedar: CedarAuthorizer,
    /// Policy id -> the file it came from (for `Debug`).
    origin: HashMap<String, String>,
    types: Types,
    /// `Action::"<name>"` uids, indexed by [`Action::index`].
    actions: Vec<EntityUid>,
    /// Per action: the principal and resource entity types it applies to.
    applies: Vec<(Vec<String>, Vec<String>)>,
    anonymous: EntityUid,
    /// Per role (indexed like [`Role::ALL`]): a user's parents, i.e.
    /// `Role::"<role>"` and the role's group, if any.
    roles: Vec<Vec<EntityUid>>,
}

/// Entity type names, parsed once.
struct Types {
    user: EntityTypeName,
    partner: EntityTypeName,
    policy: EntityTypeName,
    claim: EntityTypeName,
    voucher: EntityTypeName,
    collection: EntityTypeName,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: std::collections::BTreeMap<&str, &str> = self
            .inner
            .origin
            .iter()
            .map(|(id, file)| (id.as_str(), file.as_str()))
            .collect();
        f.debug_struct("Authorizer")
            .field("policies", &ids)
            .finish_non_exhaustive()
    }
}

impl Authorizer {
    /// The policies compiled into the binary (include_str! of
    /// `assets/policies/*`, so the binary needs no files).
    pub fn embedded() -> Result<Self, AuthzError> {
        let files: Vec<(String, String)> = EMBEDDED_POLICIES
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
            .collect();
        Self::load(SCHEMA_FILE, EMBEDDED_SCHEMA, &files)
    }

    /// Policies from a directory (`schema.cedarschema` + `*.cedar`), for
    /// operators who customise them. Other files are ignored.
    pub fn from_dir(dir: &Path) -> Result<Self, AuthzError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AuthzError::Io { path, source }
        };
        let schema_path = dir.join(SCHEMA_FILE);
        if !schema_path.is_file() {
            return Err(AuthzError::MissingSchema {
                dir: dir.to_path_buf(),
            });
        }
        let schema = std::fs::read_to_string(&schema_path).map_err(io(&schema_path))?;
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.is_file() && path.extension().is_some_and(|e| e == "cedar") {
                paths.push(path);
            }
        }
        if paths.is_empty() {
            return Err(AuthzError::NoPolicies {
                dir: dir.to_path_buf(),
            });
        }
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            files.push((path.display().to_string(), text));
        }
        Self::load(&schema_path.display().to_string(), &schema, &files)
    }

    /// True when the policies permit `principal` to do `action` on
    /// `resource`. Denies (and logs) when the request cannot be evaluated.
    #[must_use]
    pub fn is_allowed(&self, principal: &Principal, action: Action, resource: &Resource) -> bool {
        match self.evaluate(principal, action, resource) {
            Ok(response) => response.decision() == Decision::Allow,
            Err(err) => {
                tracing::warn!(error = %err, ?principal, ?resource, "authorization request refused");
                false
            }
        }
    }

    /// Evaluates one request; the response says which policies decided.
    fn evaluate(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
    ) -> Result<Response, AuthzError> {
        let (policies, needs_parents) =
            self.inner
                .slices
                .get(action, principal)
                .ok_or_else(|| AuthzError::Request {
                    action: action.as_str(),
                    message: "no policy slice for this caller".to_owned(),
                })?;
        let (request, entities) = self.build(principal, action, resource, needs_parents)?;
        // Entities are built to match the schema (a test checks them against
        // it); skipping the check here keeps the hot path cheap.
        let entities =
            Entities::from_entities(entities, None).map_err(|e| AuthzError::Request {
                action: action.as_str(),
                message: e.to_string(),
            })?;
        let response = self
            .inner
            .cedar
            .is_authorized(&request, policies, &entities);
        for error in response.diagnostics().errors() {
            tracing::warn!(%error, action = action.as_str(), "policy evaluation error; policy skipped");
        }
        Ok(response)
    }

    /// The Cedar request and the entities it needs: the principal (with its
    /// role parents if `with_parents`) and the resource. Refuses a principal
    /// or resource type the schema does not allow for the action.
    fn build(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
        with_parents: bool,
    ) -> Result<(Request, Vec<Entity>), AuthzError> {
        let inner = &*self.inner;
        let refused = |message: String| AuthzError::Request {
            action: action.as_str(),
            message,
        };
        // The schema's appliesTo, looked up in a precomputed table (asking
        // Cedar to check the request against the schema costs more).
        let (principal_types, resource_types) = &inner.applies[action.index()];
        let (principal_type, resource_type) = (principal.cedar_type(), resource.cedar_type());
        if !principal_types.iter().any(|t| t == principal_type) {
            return Err(refused(format!(
                "principal type `{principal_type}` is not valid for it"
            )));
        }
        if !resource_types.iter().any(|t| t == resource_type) {
            return Err(refused(format!(
                "resource type `{resource_type}` is not valid for it (expected one of {})",
                resource_types.join(", ")
            )));
        }
        let mut entities: Vec<Entity> = Vec::with_capacity(2);

        let principal_uid = match principal {
            Principal::Anonymous => inner.anonymous.clone(),
            Principal::User {
                id,
                role,
                partner,
                active,
            } => {
                let uid = uid(&inner.types.user, id.as_uuid());
                let parents = Role::ALL
                    .iter()
                    .position(|r| r == role)
                    .and_then(|i| inner.roles.get(i))
                    .ok_or_else(|| refused(format!("role {role} has no Role entity")))?;
                let mut attrs = Vec::with_capacity(3);
                attrs.push((
                    "role".to_owned(),
                    RestrictedExpression::new_string(role.as_str().to_owned()),
                ));
                attrs.push(("active".to_owned(), RestrictedExpression::new_bool(*active)));
                if let Some(p) = partner {
                    attrs.push((
                        "partner".to_owned(),
                        entity_ref(&inner.types.partner, p.as_uuid()),
                    ));
                }
                let parents = parents.iter().filter(|_| with_parents).cloned();
                let user = Entity::new_with_tags(uid.clone(), attrs, parents, [])
                    .map_err(|e| refused(e.to_string()))?;
                entities.push(user);
                uid
            }
        };

        let resource_uid = match resource {
            Resource::Collection(name) => EntityUid::from_type_name_and_id(
                inner.types.collection.clone(),
                EntityId::new(name),
            ),
            // The user entity, if needed, is the principal; otherwise the
            // bare uid is enough (no policy reads a User resource's attributes).
            Resource::User { id } => uid(&inner.types.user, id.as_uuid()),
            Resource::Partner { id, status } => {
                let uid = uid(&inner.types.partner, id.as_uuid());
                let attrs = [(
                    "status".to_owned(),
                    RestrictedExpression::new_string((*status).to_owned()),
                )];
                entities.push(new_entity(uid.clone(), attrs.into_iter()).map_err(refused)?);
                uid
            }
            Resource::Policy {
                id,
                customer,
                partner,
            } => {
                let uid = uid(&inner.types.policy, id.as_uuid());
                let attrs = [
                    Some((
                        "customer".to_owned(),
                        entity_ref(&inner.types.user, customer.as_uuid()),
                    )),
                    partner.map(|p| {
                        (
                            "partner".to_owned(),
                            entity_ref(&inner.types.partner, p.as_uuid()),
                        )
                    }),
                ];
                entities
                    .push(new_entity(uid.clone(), attrs.into_iter().flatten()).map_err(refused)?);
                uid
            }
            Resource::Claim {
                id,
                customer,
                partner,
                technician,
            } => {
                let uid = uid(&inner.types.claim, id.as_uuid());
                let attrs = [
                    Some((
                        "customer".to_owned(),
                        entity_ref(&inner.types.user, customer.as_uuid()),
                    )),
                    partner.map(|p| {
                        (
                            "partner".to_owned(),
                            entity_ref(&inner.types.partner, p.as_uuid()),
                        )
                    }),
                    technician.map(|t| {
                        (
                            "technician".to_owned(),
                            entity_ref(&inner.types.user, t.as_uuid()),
                        )
                    }),
                ];
                entities
                    .push(new_entity(uid.clone(), attrs.into_iter().flatten()).map_err(refused)?);
                uid
            }
            Resource::Voucher { id, customer } => {
                let uid = uid(&inner.types.voucher, id.as_uuid());
                let attrs = [(
                    "customer".to_owned(),
                    entity_ref(&inner.types.user, customer.as_uuid()),
                )];
                entities.push(new_entity(uid.clone(), attrs.into_iter()).map_err(refused)?);
                uid
            }
        };

        let request = Request::new(
            principal_uid,
            inner.actions[action.index()].clone(),
            resource_uid,
            Context::empty(),
            None,
        )
        .map_err(|e| refused(e.to_string()))?;
        Ok((request, entities))
    }

    /// Parses, renames and validates. `files` are (name, text) pairs.
    fn load(
        schema_file: &str,
        schema_src: &str,
        files: &[(String, String)],
    ) -> Result<Self, AuthzError> {
        let schema_error = |message: String| AuthzError::Schema {
            file: schema_file.to_owned(),
            message,
        };
        let (schema, warnings) =
            Schema::from_cedarschema_str(schema_src).map_err(|e| schema_error(e.to_string()))?;
        for warning in warnings {
            tracing::warn!(file = schema_file, %warning, "schema warning");
        }
        check_schema_matches_server(schema_file, &schema)?;

        let mut policies = Vec::new();
        let mut origin: HashMap<String, String> = HashMap::new();
        for (file, text) in files {
            let set = PolicySet::from_str(text).map_err(|e| AuthzError::Parse {
                file: file.clone(),
                message: e.to_string(),
            })?;
            if let Some(template) = set.templates().next() {
                let id = template.annotation("id").unwrap_or("(no @id)").to_owned();
                return Err(AuthzError::Template {
                    file: file.clone(),
                    id,
                });
            }
            // `policies()` does not keep source order; sort by position for
            // a stable "policy number N" in messages.
            let mut in_file: Vec<_> = set.policies().collect();
            in_file.sort_by_key(|p| policy_index(p.id()));
            for (index, policy) in in_file.into_iter().enumerate() {
                let Some(id) = policy.annotation("id") else {
                    return Err(AuthzError::MissingId {
                        file: file.clone(),
                        index: index + 1,
                    });
                };
                if let Some(first) = origin.get(id) {
                    return Err(AuthzError::DuplicateId {
                        id: id.to_owned(),
                        first: first.clone(),
                        second: file.clone(),
                    });
                }
                check_entity_literals(file, id, policy)?;
                origin.insert(id.to_owned(), file.clone());
                policies.push(policy.new_id(CedarPolicyId::new(id)));
            }
        }
        let policies = PolicySet::from_policies(policies).map_err(|e| AuthzError::Parse {
            file: "(policy set)".to_owned(),
            message: e.to_string(),
        })?;

        let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        let file_of = |id: &CedarPolicyId| {
            origin
                .get(id.to_string().as_str())
                .map_or("?", String::as_str)
        };
        let mut problems: Vec<String> = result
            .validation_errors()
            .map(|e| format!("{}: error: {e}", file_of(e.policy_id())))
            .collect();
        problems.extend(
            result
                .validation_warnings()
                .map(|w| format!("{}: warning: {w}", file_of(w.policy_id()))),
        );
        if !problems.is_empty() {
            return Err(AuthzError::Invalid { problems });
        }

        let types = Types {
            user: type_name("User")?,
            partner: type_name("Partner")?,
            policy: type_name("Policy")?,
            claim: type_name("Claim")?,
            voucher: type_name("Voucher")?,
            collection: type_name("Collection")?,
        };
        let action_type = type_name("Action")?;
        let actions: Vec<EntityUid> = Action::ALL
            .iter()
            .map(|a| {
                EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(a.as_str()))
            })
            .collect();
        let anonymous =
            EntityUid::from_type_name_and_id(type_name("Anonymous")?, EntityId::new(ANONYMOUS_ID));
        let roles = role_parents()?;
        let slices = Slices::build(&policies, &actions, &types.user, &anonymous, &roles)?;
        let applies = actions
            .iter()
            .map(|action| {
                let principals = schema.principals_for_action(action);
                let resources = schema.resources_for_action(action);
                match (principals, resources) {
                    (Some(p), Some(r)) => Ok((
                        p.map(ToString::to_string).collect(),
                        r.map(ToString::to_string).collect(),
                    )),
                    _ => Err(AuthzError::SchemaMismatch {
                        file: schema_file.to_owned(),
                        message: format!("action {action} is not declared"),
                    }),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;

        tracing::info!(
            policies = origin.len(),
            files = files.len(),
            "authorization policies loaded and validated"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                #[cfg(test)]
                schema,
                #[cfg(test)]
                policies,
                slices,
                cedar: CedarAuthorizer::new(),
                origin,
                types,
                actions,
                applies,
                anonymous,
                roles,
            }),
        })
    }
}

/// The schema must declare exactly the server's actions (each applying to
/// some principal) and the entity types the server builds.
fn check_schema_matches_server(file: &str, schema: &Schema) -> Result<(), AuthzError> {
    let declared: HashSet<String> = schema
        .actions()
        .map(|a| a.id().unescaped().to_owned())
        .collect();
    let mut problems = Vec::new();
    for action in Action::ALL {
        if !declared.contains(action.as_str()) {
            problems.push(format!("action \"{action}\" is not declared"));
        }
    }
    let mut extra: Vec<&String> = declared
        .iter()
        .filter(|a| Action::from_name(a).is_none())
        .collect();
    extra.sort();
    for name in extra {
        problems.push(format!(
            "action \"{name}\" is not known to the server (typo?)"
        ));
    }
    // Decisions do not load the action hierarchy (the policy slices rely on
    // `action in [...]` meaning membership in the list), so action groups
    // would silently never match: refuse them.
    let mut groups: Vec<String> = schema.action_groups().map(ToString::to_string).collect();
    groups.sort();
    if !groups.is_empty() {
        problems.push(format!(
            "action groups are not supported: {}",
            groups.join(", ")
        ));
    }
    let types: HashSet<String> = schema.entity_types().map(ToString::to_string).collect();
    for ty in [
        "Role",
        "Anonymous",
        "User",
        "Partner",
        "Policy",
        "Claim",
        "Voucher",
        "Collection",
    ] {
        if !types.contains(ty) {
            problems.push(format!("entity type {ty} is not declared"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AuthzError::SchemaMismatch {
            file: file.to_owned(),
            message: problems.join("; "),
        })
    }
}

/// Refuses `Role::"..."` and `Anonymous::"..."` literals that cannot exist.
fn check_entity_literals(
    file: &str,
    id: &str,
    policy: &cedar_policy::Policy,
) -> Result<(), AuthzError> {
    for literal in policy.entity_literals() {
        let ty = literal.type_name().to_string();
        let eid = literal.id().unescaped();
        let known: Vec<&str> = match ty.as_str() {
            "Role" => Role::ALL
                .iter()
                .map(|r| r.as_str())
                .chain(ROLE_GROUPS.iter().map(|(g, _)| *g))
                .collect(),
            "Anonymous" => vec![ANONYMOUS_ID],
            _ => continue,
        };
        if !known.contains(&eid) {
            return Err(AuthzError::UnknownEntity {
                file: file.to_owned(),
                id: id.to_owned(),
                entity: literal.to_string(),
                known: known.join(", "),
            });
        }
    }
    Ok(())
}

/// The parser names policies `policy0`, `policy1`, ... in source order.
fn policy_index(id: &CedarPolicyId) -> usize {
    id.to_string()
        .strip_prefix("policy")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

fn type_name(name: &str) -> Result<EntityTypeName, AuthzError> {
    EntityTypeName::from_str(name).map_err(|e| AuthzError::Compile {
        id: name.to_owned(),
        message: e.to_string(),
    })
}

/// Per role in [`Role::ALL`]: `Role::"<role>"` and the groups it is in.
fn role_parents() -> Result<Vec<Vec<EntityUid>>, AuthzError> {
    let role_type = type_name("Role")?;
    let role_uid =
        |id: &str| EntityUid::from_type_name_and_id(role_type.clone(), EntityId::new(id));
    Ok(Role::ALL
        .iter()
        .map(|role| {
            let groups = ROLE_GROUPS
                .iter()
                .filter(|(_, members)| members.contains(role));
            std::iter::once(role_uid(role.as_str()))
                .chain(groups.map(|(g, _)| role_uid(g)))
                .collect()
        })
        .collect())
}

/// `Type::"<uuid>"`, formatted without an intermediate `String`.
fn uid(ty: &EntityTypeName, id: Uuid) -> EntityUid {
    let mut buf = Uuid::encode_buffer();
    EntityUid::from_type_name_and_id(
        ty.clone(),
        EntityId::new(id.as_hyphenated().encode_lower(&mut buf)),
    )
}

fn entity_ref(ty: &EntityTypeName, id: Uuid) -> RestrictedExpression {
    RestrictedExpression::new_entity_uid(uid(ty, id))
}

fn new_entity(
    uid: EntityUid,
    attrs: impl Iterator<Item = (String, RestrictedExpression)>,
) -> Result<Entity, String> {
    Entity::new_with_tags(uid, attrs, [], []).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use glassguard_protocol::ClaimAction;
    use std::collections::BTreeSet;
    use std::time::Instant;

    const PUBLIC: &[&str] = &[
        "otp.request",
        "session.create",
        "session.refresh",
        "plan.list",
        "partner.register",
        "bot.message",
        "bot.sms",
    ];
    const SIGNED_IN: &[&str] = &["session.delete", "me.read"];
    /// Every active signed-in user syncs their device.
    const SYNC: &[&str] = &["sync.push", "sync.pull"];
    const CUSTOMER_OWN: &[&str] = &[
        "voucher.read",
        "policy.read",
        "claim.create",
        "claim.read",
        "claim.document.upload",
        "upload.claim_photo",
        "upload.document",
    ];
    const CUSTOMER_ANY: &[&str] = &["policy.list", "claim.list", "voucher.list"];
    const PARTNER_OWN: &[&str] = &[
        "policy.create",
        "policy.read",
        "partner.read",
        "voucher.redeem",
        "voucher.redeem_otp",
        "upload.sale_photo",
    ];
    const PARTNER_ANY: &[&str] = &["policy.list"];
    const PARTNER_ADMIN_OWN: &[&str] = &["staff.create", "staff.list", "commission.read"];
    const TECHNICIAN_OWN: &[&str] = &[
        "claim.read",
        "claim.start_repair",
        "claim.resolve_repaired",
        "claim.resolve_exchanged",
        "upload.job_photo",
    ];
    const TECHNICIAN_ANY: &[&str] = &["job.list"];
    const ADJUSTER: &[&str] = &[
        "voucher.read",
        "claim.list",
        "claim.read",
        "claim.start_review",
        "claim.approve",
        "claim.reject",
        "claim.allocate",
        "claim.request_documents",
        "claim.issue_voucher",
        "claim.close",
        "claim.photo.view",
        "policy.list",
        "policy.read",
        "partner.list",
        "partner.read",
        "user.list",
    ];
    const ADMIN_EXTRA: &[&str] = &[
        "partner.approve",
        "partner.suspend",
        "user.create",
        "staff.list",
        "commission.read",
        "sms.read",
        "audit.read",
        "audit.trace",
    ];

    /// Fixed ids: "own" resources belong to customer 1, were sold by partner 1
    /// and are allocated to technician 1; "other" ones to the number 2s.
    struct World {
        customer: [UserId; 2],
        partner: [PartnerId; 2],
        technician: [UserId; 2],
        staff: UserId,
        admin: UserId,
    }

    impl World {
        fn new() -> Self {
            World {
                customer: [UserId::new(), UserId::new()],
                partner: [PartnerId::new(), PartnerId::new()],
                technician: [UserId::new(), UserId::new()],
                staff: UserId::new(),
                admin: UserId::new(),
            }
        }

        fn user(&self, id: UserId, role: Role, partner: Option<PartnerId>) -> Principal {
            Principal::User {
                id,
                role,
                partner,
                active: true,
            }
        }

        /// A resource of the type `action` applies to; `own` picks number 1.
        fn resource(&self, principal: &Principal, action: Action, own: bool) -> Resource {
            let i = if own { 0 } else { 1 };
            let name = action.as_str();
            match name {
                "session.delete" | "me.read" => match principal {
                    Principal::User { id, .. } => Resource::User { id: *id },
                    Principal::Anonymous => Resource::Collection("sessions"),
                },
                "partner.read" | "partner.approve" | "partner.suspend" | "staff.create"
                | "staff.list" | "commission.read" | "policy.create" | "voucher.redeem"
                | "voucher.redeem_otp" => Resource::Partner {
                    id: self.partner[i],
                    status: "approved",
                },
                "voucher.read" => Resource::Voucher {
                    id: VoucherId::new(),
                    customer: self.customer[i],
                },
                "policy.read" | "claim.create" | "upload.sale_photo" => Resource::Policy {
                    id: PolicyId::new(),
                    customer: self.customer[i],
                    partner: Some(self.partner[i]),
                },
                _ if (name.starts_with("claim.") && !name.ends_with(".list"))
                    || name.starts_with("upload.") =>
                {
                    Resource::Claim {
                        id: ClaimId::new(),
                        customer: self.customer[i],
                        partner: Some(self.partner[i]),
                        technician: Some(self.technician[i]),
                    }
                }
                _ => Resource::Collection(match name.split('.').next() {
                    Some("policy") => "policies",
                    Some("claim") => "claims",
                    Some("job") => "jobs",
                    Some("voucher") => "vouchers",
                    Some("partner") => "partners",
                    Some("user") => "users",
                    Some("plan") => "plans",
                    Some("sms") => "sms",
                    Some("audit") => "audit",
                    Some("sync") => "sync",
                    Some("bot") => "bot",
                    _ => "sessions",
                }),
            }
        }
    }

    fn set(groups: &[&[&str]]) -> BTreeSet<&'static str> {
        let all: BTreeSet<&str> = groups.iter().flat_map(|g| g.iter().copied()).collect();
        Action::ALL
            .iter()
            .map(|a| a.as_str())
            .filter(|a| all.contains(a))
            .collect()
    }

    /// The reference decision: the whole, unsliced policy set, and a store
    /// where the user's only parent is `Role::"<role>"` and the role
    /// hierarchy is real `Role` entities, so Cedar itself follows the groups.
    fn reference_decision(
        authz: &Authorizer,
        principal: &Principal,
        action: Action,
        resource: &Resource,
    ) -> bool {
        let (request, entities) = authz.build(principal, action, resource, true).unwrap();
        let role_type = EntityTypeName::from_str("Role").unwrap();
        let role_uid =
            |id: &str| EntityUid::from_type_name_and_id(role_type.clone(), EntityId::new(id));
        let mut store: Vec<Entity> = Vec::new();
        for entity in entities {
            let (uid, attrs, parents) = entity.into_inner();
            let parents: HashSet<EntityUid> = match principal {
                Principal::User { id, role, .. } if uid.id().unescaped() == id.to_string() => {
                    [role_uid(role.as_str())].into()
                }
                _ => parents,
            };
            store.push(Entity::new(uid, attrs, parents).unwrap());
        }
        for role in Role::ALL {
            let groups = ROLE_GROUPS
                .iter()
                .filter(|(_, m)| m.contains(&role))
                .map(|(g, _)| role_uid(g));
            store.push(Entity::new_no_attrs(
                role_uid(role.as_str()),
                groups.collect(),
            ));
        }
        for (group, _) in ROLE_GROUPS {
            store.push(Entity::new_no_attrs(role_uid(group), HashSet::new()));
        }
        let store = Entities::from_entities(store, Some(&authz.inner.schema)).unwrap();
        let response =
            CedarAuthorizer::new().is_authorized(&request, &authz.inner.policies, &store);
        assert!(
            response.diagnostics().errors().next().is_none(),
            "{action}: {:?}",
            response.diagnostics()
        );
        response.decision() == Decision::Allow
    }

    /// The actions `principal` is allowed on own (or other) resources, after
    /// checking that every request and its entities conform to the schema
    /// and that the sliced decision equals the reference decision.
    fn allowed(
        authz: &Authorizer,
        world: &World,
        principal: &Principal,
        own: bool,
    ) -> BTreeSet<&'static str> {
        let mut allowed = BTreeSet::new();
        for action in Action::ALL {
            let resource = world.resource(principal, action, own);
            let (request, entities) = authz
                .build(principal, action, &resource, true)
                .unwrap_or_else(|e| {
                    panic!("{action} on {resource:?} does not fit the schema: {e}")
                });
            Entities::from_entities(entities, Some(&authz.inner.schema)).unwrap_or_else(|e| {
                panic!("entities for {action} do not conform to the schema: {e}")
            });
            // The precomputed appliesTo check agrees with Cedar's own.
            let (p, a, r) = (
                request.principal().unwrap(),
                request.action().unwrap(),
                request.resource().unwrap(),
            );
            Request::new(
                p.clone(),
                a.clone(),
                r.clone(),
                Context::empty(),
                Some(&authz.inner.schema),
            )
            .unwrap_or_else(|e| panic!("Cedar refuses {action} on {resource:?}: {e}"));
            let decision = authz.is_allowed(principal, action, &resource);
            assert_eq!(
                decision,
                reference_decision(authz, principal, action, &resource),
                "sliced and full policy sets disagree on {action} by {principal:?} on {resource:?}"
            );
            if decision {
                allowed.insert(action.as_str());
            }
        }
        allowed
    }

    #[test]
    fn embedded_policies_validate() {
        let authz = Authorizer::embedded().unwrap();
        assert_eq!(
            authz.inner.origin.len(),
            authz.inner.policies.policies().count()
        );
        assert!(authz.inner.origin.len() >= 12, "{authz:?}");
        // Every policy carries its @id as its Cedar id.
        for policy in authz.inner.policies.policies() {
            assert_eq!(
                policy.annotation("id"),
                Some(policy.id().to_string().as_str())
            );
        }
    }

    #[test]
    fn embedded_list_matches_the_policy_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/policies");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cedar"))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = EMBEDDED_POLICIES
            .iter()
            .map(|(n, _)| (*n).to_owned())
            .collect();
        assert_eq!(embedded, on_disk, "update EMBEDDED_POLICIES");
        let ids = |a: &Authorizer| a.inner.origin.keys().cloned().collect::<BTreeSet<_>>();
        let from_dir = Authorizer::from_dir(&dir).unwrap();
        assert_eq!(ids(&from_dir), ids(&Authorizer::embedded().unwrap()));
        assert!(
            format!("{from_dir:?}").contains("customers.cedar"),
            "{from_dir:?}"
        );
    }

    #[test]
    fn action_names_round_trip_and_claim_actions_map() {
        for (i, action) in Action::ALL.iter().enumerate() {
            assert_eq!(action.index(), i);
            assert_eq!(Action::from_name(action.as_str()), Some(*action));
        }
        for ca in ClaimAction::ALL {
            assert_eq!(
                Action::for_claim(ca).as_str(),
                format!("claim.{}", ca.as_str())
            );
        }
        assert_eq!(Action::from_name("claim.fly"), None);
    }

    #[test]
    fn decisions_for_every_action_and_principal() {
        let authz = Authorizer::embedded().unwrap();
        let w = World::new();
        let customer = w.user(w.customer[0], Role::Customer, None);
        let staff = w.user(w.staff, Role::PartnerStaff, Some(w.partner[0]));
        let partner_admin = w.user(UserId::new(), Role::PartnerAdmin, Some(w.partner[0]));
        let technician = w.user(w.technician[0], Role::Technician, None);
        let adjuster = w.user(UserId::new(), Role::Adjuster, None);
        let admin = w.user(w.admin, Role::Admin, None);
        let inactive_admin = Principal::User {
            id: UserId::new(),
            role: Role::Admin,
            partner: None,
            active: false,
        };
        let orphan_staff = w.user(UserId::new(), Role::PartnerStaff, None);

        #[rustfmt::skip]
        let table: Vec<(&str, Principal, BTreeSet<&str>, BTreeSet<&str>)> = vec![
            // (case, principal, allowed on own resources, allowed on others')
            ("anonymous", Principal::Anonymous, set(&[PUBLIC]), set(&[PUBLIC])),
            ("customer", customer,
                set(&[PUBLIC, SIGNED_IN, SYNC, CUSTOMER_ANY, CUSTOMER_OWN]),
                set(&[PUBLIC, SIGNED_IN, SYNC, CUSTOMER_ANY])),
            ("partner_staff", staff,
                set(&[PUBLIC, SIGNED_IN, SYNC, PARTNER_ANY, PARTNER_OWN]),
                set(&[PUBLIC, SIGNED_IN, SYNC, PARTNER_ANY])),
            ("partner_admin", partner_admin,
                set(&[PUBLIC, SIGNED_IN, SYNC, PARTNER_ANY, PARTNER_OWN, PARTNER_ADMIN_OWN]),
                set(&[PUBLIC, SIGNED_IN, SYNC, PARTNER_ANY])),
            ("partner_staff without partner", orphan_staff,
                set(&[PUBLIC, SIGNED_IN, SYNC, PARTNER_ANY]),
                set(&[PUBLIC, SIGNED_IN, SYNC, PARTNER_ANY])),
            ("technician", technician,
                set(&[PUBLIC, SIGNED_IN, SYNC, TECHNICIAN_ANY, TECHNICIAN_OWN]),
                set(&[PUBLIC, SIGNED_IN, SYNC, TECHNICIAN_ANY])),
            ("adjuster", adjuster, set(&[PUBLIC, SIGNED_IN, SYNC, ADJUSTER]), set(&[PUBLIC, SIGNED_IN, SYNC, ADJUSTER])),
            ("admin", admin,
                set(&[PUBLIC, SIGNED_IN, SYNC, ADJUSTER, ADMIN_EXTRA]),
                set(&[PUBLIC, SIGNED_IN, SYNC, ADJUSTER, ADMIN_EXTRA])),
            ("inactive admin", inactive_admin, set(&[SIGNED_IN]), set(&[SIGNED_IN])),
        ];

        let mut failures = Vec::new();
        for (case, principal, own, other) in &table {
            for (which, expected, is_own) in [("own", own, true), ("other's", other, false)] {
                let got = allowed(&authz, &w, principal, is_own);
                if &got != expected {
                    let extra: Vec<_> = got.difference(expected).collect();
                    let missing: Vec<_> = expected.difference(&got).collect();
                    failures.push(format!(
                        "{case} on {which}: wrongly allowed {extra:?}, wrongly denied {missing:?}"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));

        // Nobody submits a claim on the server, and the forbid says so.
        for (_, principal, _, _) in &table {
            assert!(!authz.is_allowed(
                principal,
                Action::ClaimSubmit,
                &w.resource(principal, Action::ClaimSubmit, true)
            ));
        }
        // An inactive user is stopped by the forbid, not by a missing permit.
        let resource = w.resource(&inactive_admin, Action::AuditRead, true);
        let response = authz
            .evaluate(&inactive_admin, Action::AuditRead, &resource)
            .unwrap();
        assert_eq!(response.decision(), Decision::Deny);
        assert!(
            response
                .diagnostics()
                .reason()
                .any(|id| id.to_string() == "forbid.inactive")
        );
    }

    #[test]
    fn vouchers_and_wrong_resource_types() {
        let authz = Authorizer::embedded().unwrap();
        let w = World::new();
        let admin = w.user(w.admin, Role::Admin, None);
        let customer = w.user(w.customer[0], Role::Customer, None);
        let staff = w.user(w.staff, Role::PartnerStaff, Some(w.partner[0]));
        // Only `voucher.read` applies to a single Voucher (redemption is
        // asked about the Partner); every other action is refused by the
        // schema check.
        for (i, own) in [(0, true), (1, false)] {
            let voucher = Resource::Voucher {
                id: VoucherId::new(),
                customer: w.customer[i],
            };
            for action in Action::ALL {
                let read = action == Action::VoucherRead;
                assert_eq!(
                    authz.is_allowed(&customer, action, &voucher),
                    read && own,
                    "{action} on voucher {i}"
                );
                assert_eq!(
                    authz.is_allowed(&admin, action, &voucher),
                    read,
                    "{action} on voucher {i}"
                );
                assert!(
                    !authz.is_allowed(&staff, action, &voucher),
                    "{action} on voucher {i}"
                );
                assert_eq!(
                    authz.build(&admin, action, &voucher, false).is_ok(),
                    read,
                    "{action}"
                );
            }
        }
        // A handler passing the wrong resource type gets a deny, and an error
        // that says why.
        let err = authz
            .build(
                &admin,
                Action::ClaimRead,
                &Resource::Collection("claims"),
                true,
            )
            .unwrap_err();
        assert!(err.to_string().contains("claim.read"), "{err}");
        assert!(!authz.is_allowed(&admin, Action::ClaimRead, &Resource::Collection("claims")));
        // Anonymous is not allowed on signed-in actions at all.
        assert!(!authz.is_allowed(
            &Principal::Anonymous,
            Action::MeRead,
            &Resource::Collection("sessions")
        ));
    }

    /// Writes the embedded files to a temporary directory with one file edited.
    fn dir_with(file: &str, edit: impl Fn(&str) -> String) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let files = EMBEDDED_POLICIES
            .iter()
            .copied()
            .chain([(SCHEMA_FILE, EMBEDDED_SCHEMA)]);
        for (name, text) in files {
            let text = if name == file {
                edit(text)
            } else {
                text.to_owned()
            };
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn load_error(file: &str, from: &str, to: &str) -> String {
        let dir = dir_with(file, |t| {
            assert!(t.contains(from) || from.is_empty(), "{from} not in {file}");
            t.replacen(from, to, 1)
        });
        let err =
            Authorizer::from_dir(dir.path()).expect_err("the edited policies must be refused");
        err.to_string()
    }

    #[test]
    fn typos_are_refused_at_start_up_naming_the_problem() {
        // Unknown attribute.
        let msg = load_error(
            "customers.cedar",
            "resource.customer == principal",
            "resource.custmer == principal",
        );
        assert!(
            msg.contains("customers.cedar") && msg.contains("custmer"),
            "{msg}"
        );
        println!("unknown attribute:\n{msg}\n");

        // Unknown action.
        let msg = load_error(
            "technicians.cedar",
            "Action::\"claim.start_repair\"",
            "Action::\"claim.start_repiar\"",
        );
        assert!(
            msg.contains("technicians.cedar") && msg.contains("claim.start_repiar"),
            "{msg}"
        );
        println!("unknown action:\n{msg}\n");

        // Unknown entity type.
        let msg = load_error(
            "partners.cedar",
            "resource is Partner",
            "resource is Parnter",
        );
        assert!(
            msg.contains("partners.cedar") && msg.contains("Parnter"),
            "{msg}"
        );
        println!("unknown entity type:\n{msg}\n");

        // Unknown role (the schema cannot see entity ids; the loader can).
        let msg = load_error("customers.cedar", "Role::\"customer\"", "Role::\"custmer\"");
        assert!(
            msg.contains("customers.cedar")
                && msg.contains("custmer")
                && msg.contains("customers.list"),
            "{msg}"
        );
        println!("unknown role:\n{msg}\n");

        // Optional attribute read without `has`.
        let msg = load_error("technicians.cedar", "resource has technician && ", "");
        assert!(
            msg.contains("technicians.cedar") && msg.contains("technician"),
            "{msg}"
        );
        println!("optional attribute without has:\n{msg}\n");

        // Syntax error.
        let msg = load_error("insurer.cedar", "permit (", "permit ((");
        assert!(
            msg.contains("insurer.cedar") && msg.contains("does not parse"),
            "{msg}"
        );

        // Missing and duplicate ids.
        let msg = load_error("forbid.cedar", "@id(\"forbid.claim.submit\")", "");
        assert!(msg.contains("forbid.cedar") && msg.contains("@id"), "{msg}");
        let msg = load_error("forbid.cedar", "forbid.claim.submit", "public.anyone");
        assert!(
            msg.contains("public.anyone") && msg.contains("used twice"),
            "{msg}"
        );

        // Schema typo in an action name.
        let msg = load_error(SCHEMA_FILE, "\"audit.read\"", "\"audit.raed\"");
        assert!(
            msg.contains(SCHEMA_FILE) && msg.contains("audit.raed") && msg.contains("audit.read"),
            "{msg}"
        );
        println!("schema action typo:\n{msg}\n");
    }

    #[test]
    fn action_groups_are_refused() {
        let msg = load_error(
            SCHEMA_FILE,
            "action \"session.delete\", \"me.read\"\n",
            "action \"signed_in\";\naction \"session.delete\", \"me.read\" in [\"signed_in\"]\n",
        );
        assert!(
            msg.contains("action groups are not supported") && msg.contains("signed_in"),
            "{msg}"
        );
    }

    #[test]
    fn group_membership_in_conditions_is_followed() {
        // An operator policy testing a role group in a condition (not the
        // scope, which slicing decides at start-up): decisions must then
        // load the user's role parents.
        let dir = dir_with("", str::to_owned);
        let extra = "@id(\"extra.partner_users_read_sms\")\n\
                     permit (principal is User, action == Action::\"sms.read\", resource)\n\
                     when { principal in Role::\"partner_user\" };\n";
        std::fs::write(dir.path().join("extra.cedar"), extra).unwrap();
        let authz = Authorizer::from_dir(dir.path()).unwrap();
        let w = World::new();
        let sms = Resource::Collection("sms");
        for (role, expected) in [
            (Role::PartnerStaff, true),
            (Role::PartnerAdmin, true),
            (Role::Customer, false),
        ] {
            let principal = w.user(UserId::new(), role, Some(w.partner[0]));
            assert_eq!(
                authz.is_allowed(&principal, Action::SmsRead, &sms),
                expected,
                "{role}"
            );
            assert_eq!(
                reference_decision(&authz, &principal, Action::SmsRead, &sms),
                expected,
                "{role}"
            );
        }
    }

    #[test]
    fn missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = Authorizer::from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, AuthzError::MissingSchema { .. }), "{err}");
        std::fs::write(dir.path().join(SCHEMA_FILE), EMBEDDED_SCHEMA).unwrap();
        let err = Authorizer::from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, AuthzError::NoPolicies { .. }), "{err}");
        let err = Authorizer::from_dir(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(err, AuthzError::MissingSchema { .. }), "{err}");
    }

    /// Prints the cost of one decision (not asserted: debug builds and shared
    /// CI machines vary). The bar is well under 20 µs in release builds.
    #[test]
    fn decision_cost() {
        let authz = Authorizer::embedded().unwrap();
        let w = World::new();
        let customer = w.user(w.customer[0], Role::Customer, None);
        let adjuster = w.user(UserId::new(), Role::Adjuster, None);
        let claim = w.resource(&customer, Action::ClaimRead, true);
        let n = 2_000u32;
        for (name, principal) in [("customer", &customer), ("adjuster", &adjuster)] {
            assert!(authz.is_allowed(principal, Action::ClaimRead, &claim));
            let start = Instant::now();
            for _ in 0..n {
                std::hint::black_box(authz.is_allowed(
                    principal,
                    Action::ClaimRead,
                    std::hint::black_box(&claim),
                ));
            }
            let per = start.elapsed() / n;
            println!(
                "claim.read by {name}: {per:?} per decision ({} build)",
                if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                }
            );
        }
    }
}
