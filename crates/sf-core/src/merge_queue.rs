//! Why the merge queue waits: what must exist before a merge request is tested and merged.

/// A merge steward as the merge queue sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSteward {
    /// Its name.
    pub name: String,
    /// Whether it is enabled.
    pub enabled: bool,
}

/// Why no merge request may start now, with what to do about it; `None` when the queue
/// may go on. `stewards` are the registered merge stewards, `has_tests` whether
/// `[merge] test_command` is set.
pub fn wait_reason(stewards: &[MergeSteward], has_tests: bool) -> Option<String> {
    if stewards.iter().any(|s| s.enabled) {
        return (!has_tests).then(|| {
            "no test command: set [merge] test_command in .sf/config.toml, then apply it \
             with `sfctl daemon reload`"
                .to_owned()
        });
    }
    Some(match stewards.first() {
        Some(s) => format!(
            "the merge steward `{0}` is disabled: enable it with `sfctl agent enable {0}`",
            s.name
        ),
        None => "no merge steward: register one with `sfctl agent register NAME --role \
                 steward --focus merge`"
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steward(name: &str, enabled: bool) -> MergeSteward {
        MergeSteward {
            name: name.to_owned(),
            enabled,
        }
    }

    #[test]
    fn an_enabled_steward_and_a_test_command_let_the_queue_go_on() {
        let stewards = [steward("a", false), steward("b", true)];
        assert_eq!(wait_reason(&stewards, true), None);
    }

    #[test]
    fn without_a_steward_the_reason_says_how_to_register_one() {
        let why = wait_reason(&[], true).unwrap();
        assert!(why.contains("--role steward --focus merge"), "{why}");
    }

    #[test]
    fn a_disabled_steward_is_named_with_the_command_that_enables_it() {
        let why = wait_reason(&[steward("gate", false)], true).unwrap();
        assert!(why.contains("`sfctl agent enable gate`"), "{why}");
    }

    #[test]
    fn the_steward_comes_before_the_test_command() {
        assert!(
            wait_reason(&[], false)
                .unwrap()
                .contains("no merge steward")
        );
        let why = wait_reason(&[steward("m", true)], false).unwrap();
        assert!(why.contains("test_command"), "{why}");
    }
}
