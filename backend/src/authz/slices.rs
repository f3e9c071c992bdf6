//! Policy slices: per (action, kind of caller), the policies that can apply,
//! with the parts of their scope that are already known to hold removed.
//!
//! Why: Cedar rebuilds and evaluates the scope and condition of every policy
//! in the set it is handed, on every request; a 14-action `action in [...]`
//! list alone costs microseconds. A decision instead hands Cedar only the
//! slice for its action and caller, typically one to three policies.
//!
//! A caller is anonymous, or a user of one role ([`Role::ALL`]): those are
//! the "classes". For a class, the principal's type and ancestors are fixed
//! (a user's parents are exactly its role and the role's groups; the
//! anonymous caller is the single `Anonymous::"anonymous"`), so a principal
//! scope such as `principal is User in Role::"partner_user"` is decided at
//! start-up: never (the policy is left out), always (the scope is replaced
//! by `principal`) or "depends" (kept, e.g. `principal == User::"<id>"`).
//! The action is fixed per slice, so `action in [...]` is decided the same
//! way. This is exact, not an approximation, because:
//! - the schema has no action groups (the loader refuses them) and the
//!   per-request store holds no action entities, so `action in [a, b]`
//!   means "is a or b";
//! - the per-request store holds no `Role` entities and users have no other
//!   parents, so `principal in E` holds exactly when E is the principal or
//!   one of its role parents.
//!
//! Conditions (`when`/`unless`) are never rewritten.
//!
//! Building the per-request entity store is the other big cost, and a
//! user's parents (its role and group) make it dearer: Cedar computes the
//! transitive closure of every store. Parents only matter to the `in`
//! operator (`principal in Role::"..."`, `is ... in`), so each slice records
//! whether any of its rewritten policies still uses `in`; when none does,
//! the user is built without parents. (This is why `forbid.inactive` says
//! `action == a || action == b` rather than `action in [a, b]`.)
//!
//! A test compares every sliced decision with the full, unsliced policy set
//! evaluated against a store holding the real `Role` hierarchy.

use std::collections::HashMap;

use cedar_policy::{
    ActionConstraint, EntityTypeName, EntityUid, Policy, PolicySet, PrincipalConstraint,
};
use glassguard_protocol::Role;

use super::{Action, AuthzError, Principal};

/// Number of caller classes: anonymous, then one per role.
const CLASSES: usize = 1 + Role::ALL.len();

/// The class of a caller: 0 for anonymous, 1 + position in [`Role::ALL`]
/// (`None` only if `Role::ALL` ever missed a role).
fn class_of(principal: &Principal) -> Option<usize> {
    match principal {
        Principal::Anonymous => Some(0),
        Principal::User { role, .. } => Role::ALL.iter().position(|r| r == role).map(|i| i + 1),
    }
}

/// What is fixed about the principal of one class.
struct Class<'a> {
    ty: &'a EntityTypeName,
    /// The principal itself, when the class has a single member (anonymous).
    only: Option<&'a EntityUid>,
    /// The principal's ancestors.
    ancestors: &'a [EntityUid],
}

/// Whether a scope constraint holds for every request of a slice.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fit {
    Never,
    Always,
    Depends,
}

impl Class<'_> {
    /// Does `principal in uid` hold?
    fn is_in(&self, uid: &EntityUid) -> Fit {
        if self.ancestors.contains(uid) {
            Fit::Always
        } else if uid.type_name() == self.ty {
            // `in` an entity of its own type: only itself.
            match self.only {
                Some(only) if only == uid => Fit::Always,
                Some(_) => Fit::Never,
                None => Fit::Depends,
            }
        } else {
            Fit::Never
        }
    }

    fn fit(&self, constraint: &PrincipalConstraint) -> Fit {
        match constraint {
            PrincipalConstraint::Any => Fit::Always,
            PrincipalConstraint::Is(ty) if ty == self.ty => Fit::Always,
            PrincipalConstraint::IsIn(ty, uid) if ty == self.ty => self.is_in(uid),
            PrincipalConstraint::Is(_) | PrincipalConstraint::IsIn(..) => Fit::Never,
            PrincipalConstraint::In(uid) => self.is_in(uid),
            PrincipalConstraint::Eq(uid) => match self.only {
                Some(only) if only == uid => Fit::Always,
                Some(_) => Fit::Never,
                None if uid.type_name() == self.ty => Fit::Depends,
                None => Fit::Never,
            },
        }
    }
}

/// The slices, indexed by action and class.
pub(super) struct Slices {
    /// (policies, whether any of them uses `in`).
    sets: Vec<(PolicySet, bool)>,
}

impl Slices {
    /// Slices `policies` for every action (uids indexed like [`Action::ALL`])
    /// and class. `role_parents` is indexed like [`Role::ALL`].
    pub(super) fn build(
        policies: &PolicySet,
        actions: &[EntityUid],
        user_type: &EntityTypeName,
        anonymous: &EntityUid,
        role_parents: &[Vec<EntityUid>],
    ) -> Result<Self, AuthzError> {
        let mut classes = Vec::with_capacity(CLASSES);
        classes.push(Class {
            ty: anonymous.type_name(),
            only: Some(anonymous),
            ancestors: &[],
        });
        for parents in role_parents {
            classes.push(Class {
                ty: user_type,
                only: None,
                ancestors: parents,
            });
        }
        if classes.len() != CLASSES {
            return Err(AuthzError::Compile {
                id: "(roles)".to_owned(),
                message: format!(
                    "expected {} roles, got {}",
                    Role::ALL.len(),
                    role_parents.len()
                ),
            });
        }

        // At most two rewrites per policy: with or without its principal
        // scope. Each with whether it uses `in`.
        let mut rewritten: HashMap<(String, bool), (Policy, bool)> = HashMap::new();
        let mut sets = Vec::with_capacity(actions.len() * CLASSES);
        for action in actions {
            for class in &classes {
                let mut slice = Vec::new();
                let mut uses_in = false;
                for policy in policies.policies() {
                    let action_fit = match policy.action_constraint() {
                        ActionConstraint::Any => true,
                        ActionConstraint::Eq(a) => &a == action,
                        ActionConstraint::In(list) => list.contains(action),
                    };
                    let principal_fit = class.fit(&policy.principal_constraint());
                    if !action_fit || principal_fit == Fit::Never {
                        continue;
                    }
                    let drop_principal = principal_fit == Fit::Always;
                    let key = (policy.id().to_string(), drop_principal);
                    let (rewritten, has_in) = match rewritten.get(&key) {
                        Some(p) => p.clone(),
                        None => {
                            let p = without_scope(policy, drop_principal)?;
                            rewritten.insert(key, p.clone());
                            p
                        }
                    };
                    uses_in |= has_in;
                    slice.push(rewritten);
                }
                let set = PolicySet::from_policies(slice).map_err(|e| AuthzError::Compile {
                    id: action.to_string(),
                    message: e.to_string(),
                })?;
                sets.push((set, uses_in));
            }
        }
        Ok(Slices { sets })
    }

    /// The slice for one request, and whether the principal's parents
    /// must be in the store (some policy of the slice uses `in`).
    pub(super) fn get(&self, action: Action, principal: &Principal) -> Option<(&PolicySet, bool)> {
        let (set, uses_in) = self
            .sets
            .get(action.index() * CLASSES + class_of(principal)?)?;
        Some((set, *uses_in))
    }
}

/// `policy` with its action scope (and, if asked, its principal scope)
/// replaced by the unconstrained `action` (`principal`). Same id and
/// annotations, same conditions. Also says whether the result uses `in`.
fn without_scope(policy: &Policy, drop_principal: bool) -> Result<(Policy, bool), AuthzError> {
    let compile = |message: String| AuthzError::Compile {
        id: policy.id().to_string(),
        message,
    };
    let mut json = policy.to_json().map_err(|e| compile(e.to_string()))?;
    let object = json
        .as_object_mut()
        .ok_or_else(|| compile("its JSON form is not an object".to_owned()))?;
    object.insert("action".to_owned(), serde_json::json!({ "op": "All" }));
    if drop_principal {
        object.insert("principal".to_owned(), serde_json::json!({ "op": "All" }));
    }
    let has_in = uses_in(&json);
    let policy =
        Policy::from_json(Some(policy.id().clone()), json).map_err(|e| compile(e.to_string()))?;
    Ok((policy, has_in))
}

/// True when a policy's JSON form mentions the `in` operator anywhere: as
/// an expression (`{"in": {...}}`), a scope (`{"op": "in"}`) or an
/// `is ... in` scope. (A record literal with an `in` key also counts; that
/// only costs speed, never correctness.)
fn uses_in(json: &serde_json::Value) -> bool {
    match json {
        serde_json::Value::Object(map) => map.iter().any(|(key, value)| {
            key == "in" || (key == "op" && value.as_str() == Some("in")) || uses_in(value)
        }),
        serde_json::Value::Array(items) => items.iter().any(uses_in),
        _ => false,
    }
}
