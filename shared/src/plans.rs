//! The plan catalog: what each plan is called in Stripe, what it unlocks and what it allows.
//!
//! Limits are also in the `plans` table, where the database enforces them at insert; the test
//! `the_catalog_matches_the_database` keeps the two in step. Which plan a workspace has comes
//! only from its webhook-synced subscription (`app.effective_plan` in the database).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Features {
    pub ai_tools: bool,
    pub client_portal: bool,
    pub api_access: bool,
    /// Outgoing webhooks and chat notifications.
    pub webhooks: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// `None` is unlimited.
    pub projects: Option<u32>,
    pub members: Option<u32>,
    pub ai_runs_per_month: u32,
    /// Requests per minute the workspace may make (API keys and people together).
    pub requests_per_minute: u32,
    /// Requests per minute to the expensive routes (AI runs, checkout), counted on top.
    pub expensive_per_minute: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub id: &'static str,
    pub name: &'static str,
    /// The Stripe Price lookup key checkout uses; `None` for the free plan.
    pub stripe_lookup_key: Option<&'static str>,
    pub features: Features,
    pub limits: Limits,
}

pub const FREE: Plan = Plan {
    id: "free",
    name: "Free",
    stripe_lookup_key: None,
    features: Features { ai_tools: false, client_portal: false, api_access: false, webhooks: false },
    limits: Limits {
        projects: Some(3),
        members: Some(2),
        ai_runs_per_month: 0,
        requests_per_minute: 300,
        expensive_per_minute: 20,
    },
};

pub const PRO: Plan = Plan {
    id: "pro",
    name: "Pro",
    stripe_lookup_key: Some("pro_monthly"),
    features: Features { ai_tools: true, client_portal: true, api_access: false, webhooks: true },
    limits: Limits {
        projects: Some(50),
        members: Some(10),
        ai_runs_per_month: 500,
        requests_per_minute: 1200,
        expensive_per_minute: 60,
    },
};

pub const STUDIO: Plan = Plan {
    id: "studio",
    name: "Studio",
    stripe_lookup_key: Some("studio_monthly"),
    features: Features { ai_tools: true, client_portal: true, api_access: true, webhooks: true },
    limits: Limits {
        projects: None,
        members: Some(50),
        ai_runs_per_month: 5000,
        requests_per_minute: 6000,
        expensive_per_minute: 300,
    },
};

pub const CATALOG: [Plan; 3] = [FREE, PRO, STUDIO];

/// What a workspace without a subscription has.
impl Default for Plan {
    fn default() -> Self {
        FREE
    }
}

/// A plan by id; unknown ids (e.g. a plan retired from the catalog) entitle to the free plan.
pub fn by_id(id: &str) -> Plan {
    CATALOG.into_iter().find(|plan| plan.id == id).unwrap_or(FREE)
}

/// The paid plan sold under a Stripe Price lookup key.
pub fn by_lookup_key(key: &str) -> Option<Plan> {
    CATALOG.into_iter().find(|plan| plan.stripe_lookup_key == Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_keys_and_ids_are_unique() {
        for (i, a) in CATALOG.iter().enumerate() {
            for b in &CATALOG[i + 1..] {
                assert_ne!(a.id, b.id);
                assert!(a.stripe_lookup_key.is_none() || a.stripe_lookup_key != b.stripe_lookup_key);
            }
        }
    }

    #[test]
    fn unknown_plans_fall_back_to_free() {
        assert_eq!(by_id("enterprise-2019"), FREE);
        assert_eq!(by_lookup_key("pro_monthly"), Some(PRO));
        assert_eq!(by_lookup_key("nope"), None);
    }
}
