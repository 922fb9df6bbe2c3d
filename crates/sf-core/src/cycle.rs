//! Dependency cycles. Adding "`a` waits on `b`" closes a cycle exactly when `a` is already
//! reachable from `b` by following what each task waits on; the path found is the cycle to
//! print.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Breadth-first search from `from` to `to` along `next` (what a node waits on). Returns the
/// shortest path `[from, ..., to]`, or `None`. `next` may fail (it reads the store).
pub fn find_path<K, E>(
    from: K,
    to: K,
    mut next: impl FnMut(K) -> Result<Vec<K>, E>,
) -> Result<Option<Vec<K>>, E>
where
    K: Copy + Eq + Hash,
{
    if from == to {
        return Ok(Some(vec![from]));
    }
    let mut parent: HashMap<K, K> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    parent.insert(from, from);
    while let Some(k) = queue.pop_front() {
        for n in next(k)? {
            if parent.contains_key(&n) {
                continue;
            }
            parent.insert(n, k);
            if n == to {
                let mut path = vec![to];
                let mut cur = to;
                while cur != from {
                    cur = parent[&cur];
                    path.push(cur);
                }
                path.reverse();
                return Ok(Some(path));
            }
            queue.push_back(n);
        }
    }
    Ok(None)
}

/// Would making `blocked` wait on `blocker` close a cycle? Returns the cycle as
/// `[blocked, blocker, ..., blocked]`.
pub fn cycle_if_added<K, E>(
    blocked: K,
    blocker: K,
    waits_on: impl FnMut(K) -> Result<Vec<K>, E>,
) -> Result<Option<Vec<K>>, E>
where
    K: Copy + Eq + Hash,
{
    Ok(find_path(blocker, blocked, waits_on)?.map(|path| {
        let mut cycle = vec![blocked];
        cycle.extend(path);
        cycle
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn graph(edges: &[(u32, u32)]) -> impl FnMut(u32) -> Result<Vec<u32>, Infallible> + '_ {
        move |k| {
            Ok(edges
                .iter()
                .filter(|(a, _)| *a == k)
                .map(|(_, b)| *b)
                .collect())
        }
    }

    #[test]
    fn detects_and_prints_a_cycle() {
        // 1 waits on 2, 2 waits on 3. Adding "3 waits on 1" closes 3 -> 1 -> 2 -> 3.
        let edges = [(1, 2), (2, 3)];
        let cycle = cycle_if_added(3, 1, graph(&edges)).unwrap();
        assert_eq!(cycle, Some(vec![3, 1, 2, 3]));
    }

    #[test]
    fn no_cycle_in_a_diamond() {
        let edges = [(1, 2), (1, 3), (2, 4), (3, 4)];
        assert_eq!(cycle_if_added(4, 5, graph(&edges)).unwrap(), None);
        assert_eq!(cycle_if_added(1, 4, graph(&edges)).unwrap(), None);
        assert_eq!(
            cycle_if_added(4, 1, graph(&edges)).unwrap(),
            Some(vec![4, 1, 2, 4])
        );
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        assert_eq!(cycle_if_added(7, 7, graph(&[])).unwrap(), Some(vec![7, 7]));
    }
}
