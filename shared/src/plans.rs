//! The plan catalog: what each plan is called in Stripe, what it unlocks and what it allows.
//!
//! Limits and features are also in the `plans` table, where the database enforces the limits at
//! insert and decides who a feature lets in (`app.feature_in_force`: a contact's portal, a key's
//! API access); the test `the_catalog_matches_the_database` keeps the two in step. Which plan a workspace has comes
//! only from its webhook-synced subscription (`app.effective_plan` in the database).

use serde::Serialize;

use crate::error::ApiError;

/// A feature a plan may include. The database decides whether a workspace has one now
/// (`app.feature_in_force`: an override in force wins, else the plan's), for every kind of caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    AiTools,
    ClientPortal,
    ApiAccess,
    Webhooks,
}

impl Feature {
    /// Its name as an entitlement: the `plans` column and the override's `entitlement`.
    pub fn entitlement(self) -> &'static str {
        match self {
            Feature::AiTools => "ai_tools",
            Feature::ClientPortal => "client_portal",
            Feature::ApiAccess => "api_access",
            Feature::Webhooks => "webhooks",
        }
    }

    /// How an answer names it, at the start of a sentence.
    pub fn label(self) -> &'static str {
        match self {
            Feature::AiTools => "AI tools",
            Feature::ClientPortal => "The client portal",
            Feature::ApiAccess => "API access",
            Feature::Webhooks => "Webhooks",
        }
    }

    /// 402 for a member or a key: names the plan, so they know what to upgrade from. (A client
    /// contact is told without the plan; see `Access::from_entry`.)
    pub fn not_in_plan(self, plan_name: &str) -> ApiError {
        ApiError::FeatureNotInPlan(format!(
            "{} is not part of the {plan_name} plan; the workspace owner can upgrade.",
            self.label()
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Features {
    pub ai_tools: bool,
    pub client_portal: bool,
    pub api_access: bool,
    /// Outgoing webhooks and chat notifications.
    pub webhooks: bool,
    /// AI runs beyond `ai_runs_per_month` are admitted and billed (through the overage meter,
    /// up to the workspace's spending cap) instead of refused.
    pub ai_overage: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Limits {
    /// `None` is unlimited.
    pub projects: Option<u32>,
    pub members: Option<u32>,
    pub ai_runs_per_month: u32,
    /// Requests per minute the workspace may make (API keys and people together).
    pub requests_per_minute: u32,
    /// Requests per minute to the expensive routes (AI runs, checkout), counted on top.
    pub expensive_per_minute: u32,
    /// MiB the workspace's files may take together (pending uploads included).
    pub storage_mb: u32,
    /// MiB one file may take.
    pub file_size_mb: u32,
}

/// How often a subscription renews. Entitlements never depend on it: a yearly plan unlocks and
/// allows what the monthly one does, and its monthly allowance (the AI quota) renews each month
/// of its billing period, counted from the subscription's period start (`app.ai_quota_period`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Month,
    Year,
}

impl Interval {
    /// Stripe's `recurring.interval` of a price.
    pub fn from_stripe(interval: &str) -> Option<Self> {
        match interval {
            "month" => Some(Interval::Month),
            "year" => Some(Interval::Year),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }
}

/// The Stripe Price lookup keys a paid plan is sold under, one per interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Prices {
    pub monthly: &'static str,
    pub yearly: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub id: &'static str,
    pub name: &'static str,
    /// The Stripe Price lookup keys checkout and plan changes use; `None` for the free plan.
    pub stripe_prices: Option<Prices>,
    /// Days of trial on a workspace's first paid subscription (never on a later one).
    pub trial_days: Option<u32>,
    /// Priced per seat: the subscription's quantity follows the workspace's billable seats
    /// (members and pending member invitations), and `limits.members` is the most seats it sells.
    pub per_seat: bool,
    pub features: Features,
    pub limits: Limits,
}

pub const FREE: Plan = Plan {
    id: "free",
    name: "Free",
    stripe_prices: None,
    trial_days: None,
    per_seat: false,
    features: Features { ai_tools: false, client_portal: false, api_access: false, webhooks: false, ai_overage: false },
    limits: Limits {
        projects: Some(3),
        members: Some(2),
        ai_runs_per_month: 0,
        requests_per_minute: 300,
        expensive_per_minute: 20,
        storage_mb: 100,
        file_size_mb: 10,
    },
};

pub const PRO: Plan = Plan {
    id: "pro",
    name: "Pro",
    stripe_prices: Some(Prices { monthly: "pro_monthly", yearly: "pro_yearly" }),
    trial_days: Some(14),
    per_seat: false,
    features: Features { ai_tools: true, client_portal: true, api_access: false, webhooks: true, ai_overage: true },
    limits: Limits {
        projects: Some(50),
        members: Some(10),
        ai_runs_per_month: 500,
        requests_per_minute: 1200,
        expensive_per_minute: 60,
        storage_mb: 10_240,
        file_size_mb: 1_024,
    },
};

pub const STUDIO: Plan = Plan {
    id: "studio",
    name: "Studio",
    stripe_prices: Some(Prices { monthly: "studio_monthly", yearly: "studio_yearly" }),
    trial_days: Some(14),
    per_seat: false,
    features: Features { ai_tools: true, client_portal: true, api_access: true, webhooks: true, ai_overage: true },
    limits: Limits {
        projects: None,
        members: Some(50),
        ai_runs_per_month: 5000,
        requests_per_minute: 6000,
        expensive_per_minute: 300,
        storage_mb: 102_400,
        file_size_mb: 5_120,
    },
};

/// Priced per seat: a workspace pays for each member and pending member invitation.
pub const TEAM: Plan = Plan {
    id: "team",
    name: "Team",
    stripe_prices: Some(Prices { monthly: "team_seat_monthly", yearly: "team_seat_yearly" }),
    trial_days: Some(14),
    per_seat: true,
    features: Features { ai_tools: true, client_portal: true, api_access: true, webhooks: true, ai_overage: true },
    limits: Limits {
        projects: None,
        members: Some(200),
        ai_runs_per_month: 2000,
        requests_per_minute: 3000,
        expensive_per_minute: 150,
        storage_mb: 102_400,
        file_size_mb: 5_120,
    },
};

/// Ordered from the smallest plan to the biggest: a change to a later plan is an upgrade.
pub const CATALOG: [Plan; 4] = [FREE, PRO, TEAM, STUDIO];

/// What a workspace without a subscription has.
impl Default for Plan {
    fn default() -> Self {
        FREE
    }
}

impl Plan {
    /// The lookup key of the plan's price for `interval`; `None` for the free plan.
    pub fn lookup_key(&self, interval: Interval) -> Option<&'static str> {
        self.stripe_prices.map(|prices| match interval {
            Interval::Month => prices.monthly,
            Interval::Year => prices.yearly,
        })
    }

    /// The plan as a workspace's entitlement overrides change it: `overrides` maps an
    /// entitlement to its value (`app.active_overrides`; a feature is 1 or 0, a `null` limit is
    /// unlimited). Unknown entitlements are ignored.
    pub fn with_overrides(mut self, overrides: &serde_json::Value) -> Plan {
        let Some(overrides) = overrides.as_object() else { return self };
        for (entitlement, value) in overrides {
            let number = value.as_u64().map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            let on = number.is_some_and(|n| n > 0);
            match entitlement.as_str() {
                "ai_tools" => self.features.ai_tools = on,
                "client_portal" => self.features.client_portal = on,
                "api_access" => self.features.api_access = on,
                "webhooks" => self.features.webhooks = on,
                "ai_overage" => self.features.ai_overage = on,
                "projects" => self.limits.projects = number,
                "members" => self.limits.members = number,
                "ai_runs_per_month" => self.limits.ai_runs_per_month = number.unwrap_or(self.limits.ai_runs_per_month),
                "requests_per_minute" => {
                    self.limits.requests_per_minute = number.unwrap_or(self.limits.requests_per_minute)
                }
                "expensive_per_minute" => {
                    self.limits.expensive_per_minute = number.unwrap_or(self.limits.expensive_per_minute)
                }
                "storage_mb" => self.limits.storage_mb = number.unwrap_or(self.limits.storage_mb),
                "file_size_mb" => self.limits.file_size_mb = number.unwrap_or(self.limits.file_size_mb),
                _ => {}
            }
        }
        self
    }
}

/// Every entitlement an operator can override: the features (1 on, 0 off) and the limits.
pub const OVERRIDABLE: [&str; 12] = [
    "projects",
    "members",
    "ai_runs_per_month",
    "requests_per_minute",
    "expensive_per_minute",
    "storage_mb",
    "file_size_mb",
    "ai_tools",
    "client_portal",
    "api_access",
    "webhooks",
    "ai_overage",
];

/// The features among them.
pub fn is_feature(entitlement: &str) -> bool {
    matches!(entitlement, "ai_tools" | "client_portal" | "api_access" | "webhooks" | "ai_overage")
}

/// A plan by id; unknown ids (e.g. a plan retired from the catalog) entitle to the free plan.
pub fn by_id(id: &str) -> Plan {
    CATALOG.into_iter().find(|plan| plan.id == id).unwrap_or(FREE)
}

/// A paid plan by id, or the field error a request naming another one gets.
pub fn paid(id: &str) -> Result<Plan, crate::error::FieldError> {
    CATALOG.into_iter().find(|plan| plan.id == id && plan.stripe_prices.is_some()).ok_or_else(|| {
        let paid: Vec<&str> = CATALOG.iter().filter(|p| p.stripe_prices.is_some()).map(|p| p.id).collect();
        crate::error::FieldError::new("plan", format!("must be one of: {}", paid.join(", ")))
    })
}

/// The lookup key of the metered price AI runs beyond the quota are billed at (a Stripe Price on
/// the overage meter, `STRIPE_OVERAGE_METER_EVENT_NAME`), the same for every plan that admits
/// them.
pub const AI_OVERAGE_LOOKUP_KEY: &str = "ai_overage_run";

/// The paid plan sold under a Stripe Price lookup key (either interval's).
pub fn by_lookup_key(key: &str) -> Option<Plan> {
    price_by_lookup_key(key).map(|(plan, _)| plan)
}

/// The paid plan and interval sold under a Stripe Price lookup key.
pub fn price_by_lookup_key(key: &str) -> Option<(Plan, Interval)> {
    CATALOG.into_iter().find_map(|plan| {
        [Interval::Month, Interval::Year].into_iter().find(|i| plan.lookup_key(*i) == Some(key)).map(|i| (plan, i))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_keys_and_ids_are_unique() {
        for (i, a) in CATALOG.iter().enumerate() {
            for b in &CATALOG[i + 1..] {
                assert_ne!(a.id, b.id);
                for i in [Interval::Month, Interval::Year] {
                    for j in [Interval::Month, Interval::Year] {
                        assert!(a.lookup_key(i).is_none() || a.lookup_key(i) != b.lookup_key(j));
                    }
                }
            }
        }
    }

    #[test]
    fn overrides_grant_or_withhold_features_and_replace_limits() {
        let plan = FREE.with_overrides(&serde_json::json!({
            "api_access": 1, "projects": null, "members": 12, "ai_runs_per_month": 40, "requests_per_minute": 900,
            "unknown": 3
        }));
        assert!(plan.features.api_access && !plan.features.webhooks);
        assert_eq!((plan.limits.projects, plan.limits.members), (None, Some(12)));
        assert_eq!((plan.limits.ai_runs_per_month, plan.limits.requests_per_minute), (40, 900));
        assert_eq!(plan.id, "free");
        let withheld = STUDIO.with_overrides(&serde_json::json!({"webhooks": 0}));
        assert!(!withheld.features.webhooks && withheld.features.api_access);
        assert_eq!(PRO.with_overrides(&serde_json::json!({})), PRO);
        assert_eq!(PRO.with_overrides(&serde_json::Value::Null), PRO);
    }

    #[test]
    fn unknown_plans_fall_back_to_free() {
        assert_eq!(by_id("enterprise-2019"), FREE);
        assert_eq!(by_lookup_key("pro_monthly"), Some(PRO));
        assert_eq!(by_lookup_key("nope"), None);
        assert_eq!(price_by_lookup_key("studio_yearly"), Some((STUDIO, Interval::Year)));
        assert_eq!(price_by_lookup_key("team_seat_monthly"), Some((TEAM, Interval::Month)));
    }
}
