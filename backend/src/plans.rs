//! The plan catalog (`assets/plans.toml`) and the rules a plan imposes on
//! sales and claims.
//!
//! The catalog is read once at start-up. A policy keeps a snapshot of its
//! plan's terms ([`PlanTerms`]) so a later catalog change never alters a
//! policy already sold.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use glassguard_protocol::api::{Benefit, Excess, Plan, PriceBand};
use glassguard_protocol::{ErrorCode, Money, Resolution};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The catalog compiled into the binary, so a fresh machine needs no files.
pub const EMBEDDED_CATALOG: &str = include_str!("../../assets/plans.toml");

/// Why the catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The TOML does not parse.
    #[error("plan catalog does not parse: {0}")]
    Parse(#[from] toml::de::Error),
    /// A plan breaks a rule.
    #[error("plan {plan}: {problem}")]
    Invalid {
        /// Which plan.
        plan: String,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    plans: Vec<PlanFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    id: String,
    name: String,
    coverage: String,
    term_days: u32,
    waiting_period_days: u32,
    claim_window_days: u32,
    purchase_window_days: u32,
    claims_per_term: u32,
    #[serde(default)]
    excess_percent: Option<u32>,
    #[serde(default)]
    excess_fixed_rupees: Option<i64>,
    benefits: Vec<Benefit>,
    voucher_value_rupees: i64,
    voucher_validity_days: u32,
    commission_percent: u32,
    bands: Vec<BandFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BandFile {
    #[serde(default)]
    up_to_rupees: Option<i64>,
    premium_rupees: i64,
}

/// The loaded catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    plans: Vec<Plan>,
}

impl Catalog {
    /// Parses and checks a catalog.
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile = toml::from_str(text)?;
        let mut plans = Vec::new();
        for p in file.plans {
            let bad = |problem: &str| CatalogError::Invalid {
                plan: p.id.clone(),
                problem: problem.to_string(),
            };
            let money = |r: i64| Money::from_rupees(r).map_err(|e| bad(&e.message));
            let excess = match (p.excess_percent, p.excess_fixed_rupees) {
                (Some(pc), None) if pc <= 100 => Excess::PercentBp(pc * 100),
                (None, Some(r)) => Excess::Fixed(money(r)?),
                _ => {
                    return Err(bad(
                        "give exactly one of excess_percent (0-100) or excess_fixed_rupees",
                    ));
                }
            };
            let mut bands = Vec::new();
            let mut last: Option<Money> = None;
            for (i, b) in p.bands.iter().enumerate() {
                let up_to = b.up_to_rupees.map(money).transpose()?;
                match (up_to, last) {
                    (Some(u), Some(l)) if u <= l => return Err(bad("price bands must increase")),
                    (None, _) if i + 1 != p.bands.len() => {
                        return Err(bad("only the last band may be open-ended"));
                    }
                    _ => {}
                }
                last = up_to.or(last);
                bands.push(PriceBand {
                    up_to,
                    premium: money(b.premium_rupees)?,
                });
            }
            if bands.is_empty()
                || p.term_days == 0
                || p.claims_per_term == 0
                || p.commission_percent > 100
            {
                return Err(bad(
                    "a plan needs bands, a term, at least one claim and a commission of at most 100 %",
                ));
            }
            if plans.iter().any(|q: &Plan| q.id == p.id) {
                return Err(bad("duplicate plan id"));
            }
            let voucher_value = money(p.voucher_value_rupees)?;
            plans.push(Plan {
                id: p.id.clone(),
                name: p.name,
                coverage: p.coverage,
                term_days: p.term_days,
                waiting_period_days: p.waiting_period_days,
                claim_window_days: p.claim_window_days,
                purchase_window_days: p.purchase_window_days,
                claims_per_term: p.claims_per_term,
                excess,
                benefits: p.benefits,
                voucher_value,
                voucher_validity_days: p.voucher_validity_days,
                commission_bp: p.commission_percent * 100,
                bands,
            });
        }
        Ok(Self { plans })
    }

    /// Every plan.
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    /// A plan by id.
    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }
}

/// The premium for a device price under a plan.
pub fn premium_for(plan: &Plan, device_price: Money) -> Option<Money> {
    if device_price == Money::ZERO {
        return None;
    }
    plan.bands
        .iter()
        .find(|b| b.up_to.is_none_or(|u| device_price <= u))
        .map(|b| b.premium)
}

/// The terms a policy keeps from its plan at the time of sale. Stored as
/// JSON on the policy: must not change shape without a migration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanTerms {
    /// Term length.
    pub term_days: u32,
    /// Waiting period.
    pub waiting_period_days: u32,
    /// Claim window after the incident.
    pub claim_window_days: u32,
    /// Claims per term.
    pub claims_per_term: u32,
    /// Excess.
    pub excess: Excess,
    /// Allowed benefits.
    pub benefits: Vec<Benefit>,
    /// Voucher value.
    pub voucher_value: Money,
    /// Voucher validity.
    pub voucher_validity_days: u32,
}

impl From<&Plan> for PlanTerms {
    fn from(p: &Plan) -> Self {
        Self {
            term_days: p.term_days,
            waiting_period_days: p.waiting_period_days,
            claim_window_days: p.claim_window_days,
            claims_per_term: p.claims_per_term,
            excess: p.excess,
            benefits: p.benefits.clone(),
            voucher_value: p.voucher_value,
            voucher_validity_days: p.voucher_validity_days,
        }
    }
}

/// Checks a sale against the plan; returns (premium, start, end).
pub fn check_sale(
    plan: &Plan,
    device_price: Money,
    purchase_date: NaiveDate,
    today: NaiveDate,
) -> Result<(Money, NaiveDate, NaiveDate), ApiError> {
    let premium = premium_for(plan, device_price).ok_or_else(|| {
        ApiError::rule(
            ErrorCode::NoPlanForPrice,
            "no premium band covers this device price",
        )
    })?;
    if purchase_date > today {
        return Err(ApiError::rule(
            ErrorCode::InvalidDate,
            "the device purchase date is in the future",
        ));
    }
    if (today - purchase_date).num_days() > i64::from(plan.purchase_window_days) {
        return Err(ApiError::rule(
            ErrorCode::DevicePurchaseTooOld,
            format!(
                "this plan must be bought within {} days of the device",
                plan.purchase_window_days
            ),
        ));
    }
    let end = today + Duration::days(i64::from(plan.term_days) - 1);
    Ok((premium, today, end))
}

/// Checks a new claim against its policy's terms. Each refusal has its own code.
pub fn check_claim(
    terms: &PlanTerms,
    start: NaiveDate,
    end: NaiveDate,
    claims_used: u32,
    incident_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let incident_day = incident_at.date_naive();
    if incident_at > now + Duration::minutes(5) {
        return Err(ApiError::rule(
            ErrorCode::InvalidDate,
            "the incident time is in the future",
        ));
    }
    if incident_day < start || incident_day > end {
        return Err(ApiError::rule(
            ErrorCode::PolicyNotActive,
            "the policy was not in force on the incident date",
        ));
    }
    if incident_day < start + Duration::days(i64::from(terms.waiting_period_days)) {
        return Err(ApiError::rule(
            ErrorCode::WaitingPeriod,
            format!(
                "incidents in the first {} days of cover are not covered",
                terms.waiting_period_days
            ),
        ));
    }
    if now - incident_at > Duration::days(i64::from(terms.claim_window_days)) {
        return Err(ApiError::rule(
            ErrorCode::OutsideClaimWindow,
            format!(
                "a claim must be filed within {} days of the incident",
                terms.claim_window_days
            ),
        ));
    }
    if claims_used >= terms.claims_per_term {
        return Err(ApiError::rule(
            ErrorCode::ClaimsPerTermExceeded,
            format!(
                "this policy allows {} claim(s) per term",
                terms.claims_per_term
            ),
        ));
    }
    Ok(())
}

/// Whether the policy's plan allows a resolution.
pub fn allows(terms: &PlanTerms, resolution: Resolution) -> bool {
    let needed = match resolution {
        Resolution::Repaired => Benefit::Repair,
        Resolution::Exchanged => Benefit::Exchange,
        Resolution::VoucherIssued => Benefit::Voucher,
    };
    terms.benefits.contains(&needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::parse(EMBEDDED_CATALOG).unwrap()
    }

    #[test]
    fn embedded_catalog_matches_the_market() {
        let c = catalog();
        let p = c.get("screen-1y").unwrap();
        let premium = |r| {
            premium_for(p, Money::from_rupees(r).unwrap())
                .unwrap()
                .paise()
                / 100
        };
        assert_eq!(premium(9_999), 399);
        assert_eq!(premium(10_000), 399);
        assert_eq!(premium(10_001), 699);
        assert_eq!(premium(50_001), 2499);
        assert_eq!(premium(100_000), 2499);
        assert_eq!(premium(150_000), 3999);
        assert_eq!(p.excess, Excess::PercentBp(1000));
    }

    #[test]
    fn bad_catalogs_name_the_plan() {
        let text = EMBEDDED_CATALOG.replace("up_to_rupees = 20000", "up_to_rupees = 5000");
        let e = Catalog::parse(&text).unwrap_err().to_string();
        assert!(e.contains("screen-1y") && e.contains("increase"), "{e}");
        assert!(Catalog::parse("plans = 3").is_err());
    }

    #[test]
    fn claim_rules_each_have_their_code() {
        let c = catalog();
        let terms = PlanTerms::from(c.get("screen-1y").unwrap());
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let end = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
        let at = |d: u32, h: u32| {
            NaiveDate::from_ymd_opt(2026, 1, d)
                .unwrap()
                .and_hms_opt(h, 0, 0)
                .unwrap()
                .and_utc()
        };
        let code = |r: Result<(), ApiError>| r.err().map(|e| e.code());
        assert_eq!(
            code(check_claim(&terms, start, end, 0, at(10, 9), at(10, 12))),
            None
        );
        assert_eq!(
            code(check_claim(&terms, start, end, 0, at(3, 9), at(3, 12))),
            Some(ErrorCode::WaitingPeriod)
        );
        assert_eq!(
            code(check_claim(&terms, start, end, 0, at(10, 9), at(13, 12))),
            Some(ErrorCode::OutsideClaimWindow)
        );
        assert_eq!(
            code(check_claim(&terms, start, end, 1, at(10, 9), at(10, 12))),
            Some(ErrorCode::ClaimsPerTermExceeded)
        );
        let late = NaiveDate::from_ymd_opt(2027, 1, 2)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap()
            .and_utc();
        assert_eq!(
            code(check_claim(&terms, start, end, 0, late, late)),
            Some(ErrorCode::PolicyNotActive)
        );
    }

    #[test]
    fn sale_rules() {
        let c = catalog();
        let p = c.get("screen-1y").unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let price = Money::from_rupees(15_000).unwrap();
        let (premium, start, end) = check_sale(p, price, today - Duration::days(7), today).unwrap();
        assert_eq!(premium.paise(), 69_900);
        assert_eq!(
            (start, end),
            (today, NaiveDate::from_ymd_opt(2027, 3, 9).unwrap())
        );
        let e = check_sale(p, price, today - Duration::days(8), today).unwrap_err();
        assert_eq!(e.code(), ErrorCode::DevicePurchaseTooOld);
        assert_eq!(
            check_sale(p, Money::ZERO, today, today).unwrap_err().code(),
            ErrorCode::NoPlanForPrice
        );
    }
}
