//! Pairing ready tasks with idle workers.

use crate::naming::has_skills;

/// An agent that can take more work now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Agent name.
    pub agent: String,
    /// Its skills (normalized).
    pub skills: Vec<String>,
    /// How many more tasks it may run now.
    pub free: u32,
}

/// Pairs tasks (in dispatch order, with their required skills) with agents: each task goes
/// to the agent with the most free slots among those that have every required skill (ties:
/// by name), until `capacity` pairs are made. A task no agent can take is skipped, so it
/// never holds back the tasks behind it.
pub fn pair<K: Copy>(
    tasks: &[(K, &[String])],
    slots: &mut [Slot],
    capacity: usize,
) -> Vec<(K, String)> {
    let mut out = Vec::new();
    for &(task, need) in tasks {
        if out.len() >= capacity {
            break;
        }
        let best = slots
            .iter_mut()
            .filter(|s| s.free > 0 && has_skills(&s.skills, need))
            .min_by(|a, b| b.free.cmp(&a.free).then_with(|| a.agent.cmp(&b.agent)));
        if let Some(slot) = best {
            slot.free -= 1;
            out.push((task, slot.agent.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(agent: &str, skills: &[&str], free: u32) -> Slot {
        Slot {
            agent: agent.into(),
            skills: skills.iter().map(|s| (*s).to_owned()).collect(),
            free,
        }
    }

    #[test]
    fn skills_limits_and_capacity() {
        let rust = vec!["rust".to_owned()];
        let none: Vec<String> = vec![];
        let go = vec!["go".to_owned()];
        let tasks = [
            (1, rust.as_slice()),
            (2, go.as_slice()),
            (3, none.as_slice()),
            (4, none.as_slice()),
        ];
        let mut slots = [slot("a", &["rust"], 1), slot("b", &[], 1)];
        // task 2 needs go: nobody has it, it is skipped without blocking 3
        assert_eq!(
            pair(&tasks, &mut slots, 10),
            vec![(1, "a".into()), (3, "b".into())]
        );
        let mut slots = [slot("a", &["rust"], 2), slot("b", &[], 1)];
        assert_eq!(
            pair(&tasks, &mut slots, 2),
            vec![(1, "a".into()), (3, "a".into())]
        );
    }

    #[test]
    fn work_is_spread_over_free_agents() {
        let none: Vec<String> = vec![];
        let tasks = [(1, none.as_slice()), (2, none.as_slice())];
        let mut slots = [slot("a", &[], 1), slot("b", &[], 1)];
        assert_eq!(
            pair(&tasks, &mut slots, 5),
            vec![(1, "a".into()), (2, "b".into())]
        );
    }
}
