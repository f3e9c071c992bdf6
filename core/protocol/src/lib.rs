//! Glassguard's wire protocol: the value types every side agrees on.
//!
//! Everything here is *parsed, never merely validated*: a value of [`Imei`],
//! [`PhoneNumber`], [`Gstin`], [`Pan`] or [`Money`] is valid by construction,
//! because the only ways to build one are its `parse` function or its serde
//! `Deserialize` (which calls `parse`). Handlers on the backend and commands in
//! the device core turn untrusted input into these types at the edge and work
//! with the types from then on.
//!
//! The crate has no native dependencies so that it also builds for
//! `wasm32-unknown-unknown` (the Dioxus app depends only on this crate).
//!
//! Modules:
//! - [`ids`]: UUIDv7 identifiers, one newtype per entity.
//! - [`imei`], [`phone`], [`gstin`], [`pan`], [`money`]: Indian identifiers and amounts.
//! - [`claims`]: the claim state machine, with its allowed transitions as data.
//! - [`roles`]: who a user is.
//! - [`problem`]: stable error codes and the RFC 9457 problem body.
//! - [`api`]: request and response bodies of the HTTP API under `/v1`.
//! - [`sync`]: the outbox push / pull contract between devices and the server.
//! - [`uploads`]: blobs named by their SHA-256, their kinds, and attaching them.
#![warn(missing_docs)]

pub mod api;
pub mod claims;
pub mod gstin;
pub mod ids;
pub mod imei;
pub mod money;
pub mod pan;
pub mod phone;
pub mod problem;
pub mod roles;
pub mod sync;
pub mod uploads;

pub use claims::{ClaimAction, ClaimState, Resolution, TransitionError};
pub use gstin::Gstin;
pub use ids::*;
pub use imei::Imei;
pub use money::Money;
pub use pan::Pan;
pub use phone::PhoneNumber;
pub use problem::{ErrorCode, Problem};
pub use roles::Role;

/// Implements `Serialize`/`Deserialize` through `Display`/`parse`, so a value
/// read off the wire goes through the same parser as any other input.
macro_rules! serde_via_parse {
    ($t:ty, $expecting:literal) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                <$t>::parse(&s).map_err(serde::de::Error::custom)
            }
        }
        impl std::str::FromStr for $t {
            type Err = crate::problem::ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$t>::parse(s)
            }
        }
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $t {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($expecting))
                    .into()
            }
        }
        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $t {}
    };
}
pub(crate) use serde_via_parse;
