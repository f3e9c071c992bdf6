//! Domain commands: the rules and the effect of each write, applied on a
//! transaction the caller holds. The HTTP handlers and the sync push both go
//! through these, so a sale or claim recorded offline obeys exactly the rules
//! of one made online, and is authorized by the same authorizer.
//!
//! A command never opens a write transaction of its own (SQLite has one
//! writer; the caller's transaction is it). Steps that must commit on their
//! own, like consuming an OTP, happen before the caller begins.

pub mod attachments;
pub mod claims;
pub mod sales;

/// Checks a free-text field's length.
pub(crate) fn text(field: &str, v: &str, max: usize) -> crate::error::ApiResult<()> {
    if v.trim().is_empty() || v.chars().count() > max {
        return Err(crate::error::ApiError::rule(
            glassguard_protocol::ErrorCode::InvalidRequest,
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    Ok(())
}
