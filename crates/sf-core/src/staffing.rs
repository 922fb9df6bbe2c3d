//! Ready work nobody can take: a warning for `sfctl daemon status` when no enabled
//! ephemeral worker exists, or none has the skills a ready task needs.

use std::collections::BTreeSet;

/// An ephemeral worker as staffing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    /// Its name.
    pub name: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// The skills it has.
    pub skills: Vec<String>,
}

/// The warning about `ready` tasks (each given by the skills it needs) that no enabled
/// worker of `staff` can take; `None` when every ready task has someone.
pub fn unstaffed(ready: &[&[String]], staff: &[Staff]) -> Option<String> {
    if ready.is_empty() {
        return None;
    }
    let enabled: Vec<&Staff> = staff.iter().filter(|s| s.enabled).collect();
    if enabled.is_empty() {
        let disabled: Vec<&str> = staff.iter().map(|s| s.name.as_str()).collect();
        let what = if disabled.is_empty() {
            "register one with `sfctl agent register NAME --role worker ...`".to_owned()
        } else {
            format!(
                "{} disabled (see why with `sfctl events`); enable with `sfctl agent enable NAME`",
                disabled.join(", ")
            )
        };
        return Some(format!(
            "{} ready task(s) and no enabled ephemeral worker: {what}",
            ready.len()
        ));
    }
    let mut missing = BTreeSet::new();
    let mut stranded = 0;
    for needs in ready {
        let takes = |w: &&Staff| needs.iter().all(|k| w.skills.contains(k));
        if !enabled.iter().any(takes) {
            stranded += 1;
            missing.extend(needs.iter().cloned());
        }
    }
    (stranded > 0).then(|| {
        format!(
            "{stranded} ready task(s) need skills no enabled worker has (among: {}): give a \
             worker those --skills",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(name: &str, enabled: bool, skills: &[&str]) -> Staff {
        Staff {
            name: name.to_owned(),
            enabled,
            skills: skills.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn skills(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn no_ready_work_no_warning() {
        assert_eq!(unstaffed(&[], &[]), None);
    }

    #[test]
    fn ready_work_and_no_worker_says_how_to_register_one() {
        let rust = skills(&["rust"]);
        let why = unstaffed(&[&rust], &[]).unwrap();
        assert!(why.starts_with("1 ready task(s) and no enabled"), "{why}");
        assert!(why.contains("--role worker"), "{why}");
    }

    #[test]
    fn disabled_workers_are_named() {
        let none = skills(&[]);
        let why = unstaffed(&[&none, &none], &[staff("w1", false, &[])]).unwrap();
        assert!(why.starts_with("2 ready task(s)"), "{why}");
        assert!(why.contains("w1 disabled"), "{why}");
    }

    #[test]
    fn tasks_whose_skills_nobody_has_are_counted_with_the_skills() {
        let (rust, go, none) = (skills(&["rust"]), skills(&["go", "sql"]), skills(&[]));
        let team = [
            staff("w1", true, &["rust"]),
            staff("w2", false, &["go", "sql"]),
        ];
        let why = unstaffed(&[&rust, &go, &none], &team).unwrap();
        assert!(why.starts_with("1 ready task(s) need skills"), "{why}");
        assert!(why.contains("among: go, sql"), "{why}");
        assert_eq!(unstaffed(&[&rust, &none], &team), None);
    }
}
