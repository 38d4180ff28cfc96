//! Identity resolution: persons as connected components of linked identities, with a merge guard.

use differential_dataflow::algorithms::graphs::propagate::propagate;
use differential_dataflow::operators::{CountTotal, ThresholdTotal};

use super::Coll;
use crate::facts::{Ident, Person};

/// Each identity's person, and the identities that stopped linking with their number of links.
pub type Resolved<'s> = (Coll<'s, (Ident, Person)>, Coll<'s, (Ident, u32)>);

/// Labels every identity with its person (the smallest identity of its component).
///
/// An identity directly linked to more than `max_links` distinct identities stops linking (it
/// stays a person of its own); those identities come out in the second collection with their
/// number of links.
pub fn resolve<'s>(
    idents: Coll<'s, Ident>,
    edges: Coll<'s, (Ident, Ident)>,
    max_links: u32,
) -> Resolved<'s> {
    let links = edges.flat_map(|(a, b)| [(a, b), (b, a)]).distinct_total();
    let guarded = links
        .clone()
        .map(|(a, _)| a)
        .count_total()
        .filter(move |(_, n)| *n > max_links as isize)
        .map(|(a, n)| (a, u32::try_from(n).unwrap_or(u32::MAX)));
    let hubs = guarded.clone().map(|(a, _)| a);
    let kept = links
        .antijoin(hubs.clone())
        .map(|(a, b)| (b, a))
        .antijoin(hubs);
    let labels = propagate(kept, idents.map(|i| (i, i)));
    (labels, guarded)
}
