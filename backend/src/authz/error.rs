//! The authorization module's error type.
//!
//! Every variant is a start-up problem with the policy files (or, for
//! [`AuthzError::Request`], a bug in how a handler describes a request), so
//! each message names the file and, where there is one, the policy id.

use std::path::PathBuf;

/// What can go wrong while loading, validating or evaluating the policies.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// A policy directory or file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// The policy directory has no `schema.cedarschema`.
    #[error("{} has no schema.cedarschema; the policies cannot be validated without it", dir.display())]
    MissingSchema {
        /// The directory.
        dir: PathBuf,
    },

    /// The policy directory has no `*.cedar` file (everything would be denied).
    #[error("{} has no *.cedar policy file; refusing to start with an empty policy set", dir.display())]
    NoPolicies {
        /// The directory.
        dir: PathBuf,
    },

    /// The schema does not parse or is inconsistent.
    #[error("schema {file} is invalid: {message}")]
    Schema {
        /// The schema file.
        file: String,
        /// The parser's or checker's message.
        message: String,
    },

    /// The schema does not declare exactly the actions and entity types the
    /// server sends to the authorizer.
    #[error("schema {file} does not match the server: {message}")]
    SchemaMismatch {
        /// The schema file.
        file: String,
        /// What is missing or extra.
        message: String,
    },

    /// A policy file does not parse.
    #[error("policy file {file} does not parse: {message}")]
    Parse {
        /// The policy file.
        file: String,
        /// The parser's message.
        message: String,
    },

    /// A policy file contains a template (a policy with `?principal` or
    /// `?resource`); the server links none.
    #[error("policy file {file}: policy `{id}` is a template; only static policies are supported")]
    Template {
        /// The policy file.
        file: String,
        /// The template's id.
        id: String,
    },

    /// A policy has no `@id("...")` annotation.
    #[error("policy file {file}: policy number {index} has no @id(\"...\") annotation")]
    MissingId {
        /// The policy file.
        file: String,
        /// The policy's position in the file, from 1.
        index: usize,
    },

    /// Two policies share an `@id`.
    #[error("policy id `{id}` is used twice: in {first} and in {second}")]
    DuplicateId {
        /// The id.
        id: String,
        /// The file of the first policy with that id.
        first: String,
        /// The file of the second.
        second: String,
    },

    /// A policy names an entity that cannot exist, such as `Role::"custmer"`.
    /// (The schema cannot check entity ids, so the loader does for the
    /// closed sets: `Role` and `Anonymous`.)
    #[error("policy file {file}: policy `{id}` names unknown entity {entity}; known: {known}")]
    UnknownEntity {
        /// The policy file.
        file: String,
        /// The policy id.
        id: String,
        /// The entity literal, e.g. `Role::"custmer"`.
        entity: String,
        /// The ids that exist for that type.
        known: String,
    },

    /// The policies do not validate against the schema in strict mode.
    /// Validator warnings (e.g. a policy that can never apply) count too.
    #[error("policies do not validate against the schema ({} problem(s)):\n  {}", problems.len(), problems.join("\n  "))]
    Invalid {
        /// One line per problem, each starting with the file name.
        problems: Vec<String>,
    },

    /// A validated policy could not be prepared for fast evaluation (a bug
    /// in this module or in Cedar, not in the policy).
    #[error("cannot prepare policy `{id}` for evaluation: {message}")]
    Compile {
        /// The policy id (or the action, for a whole slice).
        id: String,
        /// What went wrong.
        message: String,
    },

    /// A request could not be built (a handler passed a resource type the
    /// action does not apply to, or an entity could not be constructed).
    /// [`super::Authorizer::is_allowed`] logs this and denies.
    #[error("cannot evaluate {action}: {message}")]
    Request {
        /// The action's Cedar name.
        action: &'static str,
        /// What went wrong.
        message: String,
    },
}
