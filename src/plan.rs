//! The configuration resolved into lookup tables shared by ingest and the dataflow.

use foldhash::{HashMap, HashMapExt};

use crate::config::{Config, Denominator};
use crate::facts::{NameId, RuleId};

/// A funnel with its steps as name ids.
#[derive(Clone, Debug)]
pub struct FunnelPlan {
    pub name: String,
    pub steps: Vec<NameId>,
    pub window_ms: i64,
}

/// A ratio with its events as name ids; `denominator: None` means "active".
#[derive(Clone, Debug)]
pub struct RatioPlan {
    pub name: String,
    pub numerator: Vec<NameId>,
    pub denominator: Option<Vec<NameId>>,
}

/// What ingest needs to know about one event name.
#[derive(Clone, Copy, Debug, Default)]
pub struct NameClass {
    pub id: Option<NameId>,
    pub funnel_step: bool,
    /// A funnel step only ever as a funnel's first: of such events only each identity's
    /// earliest of a day can be an entry (`t0` of METRICS.md), and no later step matches them.
    pub funnel_entry_only: bool,
    pub ratio_event: bool,
    pub excluded: bool,
    pub purchase: bool,
    pub spend: bool,
    /// Some rule has this event as its trigger, cancel or goal.
    pub rules: bool,
}

/// What an event name is to a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleRole {
    Trigger,
    Cancel,
    Goal,
}

/// The id of the `i`th funnel, ratio, rule, alert or counted event name: config validation
/// allows at most 65536 of each.
pub(crate) fn id(i: usize) -> u16 {
    u16::try_from(i).expect("the config allows at most 65536")
}

/// Resolved configuration.
#[derive(Clone, Debug)]
pub struct Plan {
    pub config: Config,
    pub names: Vec<String>,
    pub funnels: Vec<FunnelPlan>,
    pub ratios: Vec<RatioPlan>,
    classes: HashMap<String, NameClass>,
    /// For each event name, the rules it plays a part in and which.
    rule_roles: HashMap<String, Vec<(RuleId, RuleRole)>>,
    /// Some rule reads persons' revenue.
    pub rules_need_paid: bool,
    /// Some rule reads persons' active days.
    pub rules_need_days: bool,
}

impl Plan {
    pub fn new(config: Config) -> Self {
        let mut names: Vec<String> = Vec::new();
        let mut classes: HashMap<String, NameClass> = HashMap::new();
        let intern = |name: &str,
                      names: &mut Vec<String>,
                      classes: &mut HashMap<String, NameClass>|
         -> NameId {
            let class = classes.entry(name.to_string()).or_default();
            *class.id.get_or_insert_with(|| {
                names.push(name.to_string());
                id(names.len() - 1)
            })
        };
        let funnels = config
            .funnels
            .iter()
            .map(|f| FunnelPlan {
                name: f.name.clone(),
                steps: f
                    .steps
                    .iter()
                    .map(|s| intern(s, &mut names, &mut classes))
                    .collect(),
                window_ms: f.window_ms,
            })
            .collect::<Vec<_>>();
        for f in &config.funnels {
            for s in &f.steps {
                let class = classes.get_mut(s).expect("interned above");
                class.funnel_step = true;
                class.funnel_entry_only = true;
            }
        }
        for f in &config.funnels {
            for s in &f.steps[1..] {
                classes.get_mut(s).expect("interned above").funnel_entry_only = false;
            }
        }
        let ratios = config
            .ratios
            .iter()
            .map(|r| RatioPlan {
                name: r.name.clone(),
                numerator: r
                    .numerator
                    .iter()
                    .map(|s| intern(s, &mut names, &mut classes))
                    .collect(),
                denominator: match &r.denominator {
                    Denominator::Active => None,
                    Denominator::Events(list) => Some(
                        list.iter()
                            .map(|s| intern(s, &mut names, &mut classes))
                            .collect(),
                    ),
                },
            })
            .collect::<Vec<_>>();
        for r in &config.ratios {
            let dens = match &r.denominator {
                Denominator::Active => &[][..],
                Denominator::Events(list) => &list[..],
            };
            for s in r.numerator.iter().chain(dens) {
                classes.get_mut(s).expect("interned above").ratio_event = true;
            }
        }
        for name in &config.activity_exclude {
            classes.entry(name.clone()).or_default().excluded = true;
        }
        classes
            .entry(config.purchase_event.clone())
            .or_default()
            .purchase = true;
        classes.entry(config.spend_event.clone()).or_default().spend = true;
        let mut rule_roles: HashMap<String, Vec<(RuleId, RuleRole)>> = HashMap::new();
        for (i, r) in config.rules.iter().enumerate() {
            let i: RuleId = id(i);
            let mut add = |name: &str, role| {
                classes.entry(name.to_string()).or_default().rules = true;
                rule_roles
                    .entry(name.to_string())
                    .or_default()
                    .push((i, role));
            };
            add(&r.when, RuleRole::Trigger);
            if let Some(u) = &r.unless {
                add(u, RuleRole::Cancel);
            }
            if let Some(g) = &r.goal {
                add(g, RuleRole::Goal);
            }
        }
        Plan {
            rules_need_paid: config.rules.iter().any(|r| r.cond.needs_revenue()),
            rules_need_days: config.rules.iter().any(|r| r.cond.needs_active_days()),
            config,
            names,
            funnels,
            ratios,
            classes,
            rule_roles,
        }
    }

    /// The rules an event name plays a part in, and which part.
    pub fn rule_roles(&self, name: &str) -> &[(RuleId, RuleRole)] {
        self.rule_roles.get(name).map_or(&[], |v| v.as_slice())
    }

    /// The class of an interned name.
    pub fn class_of(&self, name: NameId) -> NameClass {
        self.names
            .get(name as usize)
            .map_or_else(NameClass::default, |n| self.class(n))
    }

    /// How an event name takes part in the metrics (all false for names no metric singles out).
    pub fn class(&self, name: &str) -> NameClass {
        self.classes.get(name).copied().unwrap_or_default()
    }
}
