//! Job roles and names: what an agent's job (`ceo`, `coder`, `reviewer`, …) gives it by
//! default — a prompt section, tool rules it cannot be granted out of, capabilities it
//! may not hold — and the conventional names of agents registered without one.

use std::sync::LazyLock;

use sf_proto::{Capability, Focus, JobRole, Mode, Role};

use crate::tools::{ToolDecision, ToolRules};

/// The prompt section a job role puts into its agent's prompt.
pub fn prompt_section(job: JobRole) -> &'static str {
    match job {
        JobRole::Ceo => {
            "Your job: lead. Turn goals into plans of small, testable tasks, staff them, and \
             watch progress. Hiring asks a human; durable decisions are theirs."
        }
        JobRole::Coder => {
            "Your job: write code. Make the smallest change that does the task, with tests, \
             in small commits on your branch."
        }
        JobRole::Reviewer => {
            "Your job: review. Read the change and its tests, and report findings (file, \
             line, why, what to do) by message; you do not edit files or push."
        }
        JobRole::Qa => {
            "Your job: quality. Reproduce, write tests that fail for the defect, and report \
             what you found with the steps to see it."
        }
        JobRole::Designer => {
            "Your job: design. Propose interfaces and user-facing text, with the reasons, \
             as documents in your branch."
        }
        JobRole::Security => {
            "Your job: security review. Look for ways to cross a boundary (input, secrets, \
             permissions, the network) and report each with its impact; you do not edit \
             files or push."
        }
        JobRole::Devops => {
            "Your job: builds and delivery. Keep the build, tests and merge queue healthy; \
             change pipelines only through reviewed commits."
        }
        JobRole::Pm => {
            "Your job: product. Write clear tasks with acceptance criteria, and keep the \
             backlog ordered by value."
        }
        JobRole::General => "",
    }
}

/// Capabilities a job role may never hold (a reviewer cannot push).
pub fn forbidden(job: JobRole) -> &'static [Capability] {
    match job {
        JobRole::Reviewer | JobRole::Security => &[Capability::Push],
        _ => &[],
    }
}

const NO_EDIT: &str = "reviewers report findings by message; they do not change files";
const NO_PUSH: &str = "this job role never pushes: report with `sfctl message send`";

static READ_ONLY: LazyLock<ToolRules> = LazyLock::new(|| {
    ToolRules::built_in(
        "job",
        &[
            ("Edit", ToolDecision::Deny, NO_EDIT),
            ("MultiEdit", ToolDecision::Deny, NO_EDIT),
            ("Write", ToolDecision::Deny, NO_EDIT),
            ("NotebookEdit", ToolDecision::Deny, NO_EDIT),
            ("Bash(git push*)", ToolDecision::Deny, NO_PUSH),
            ("Bash(git commit*)", ToolDecision::Deny, NO_EDIT),
        ],
    )
});

/// The tool rules a job role adds before the policy's (they only deny), if any.
pub fn tool_rules(job: JobRole) -> Option<&'static ToolRules> {
    match job {
        JobRole::Reviewer | JobRole::Security => Some(&READ_ONLY),
        _ => None,
    }
}

/// The skill a task for `seat` needs: only the seat's agent has it (`sfctl task create
/// --seat`), and no agent of a human seat exists, so a human seat's tasks are never
/// dispatched.
pub fn seat_skill(seat: &str) -> String {
    format!("seat.{seat}")
}

/// The skill of an agent's triage tasks: only that agent offers it.
pub fn triage_skill(agent: &str) -> String {
    format!("triage.{agent}")
}

/// What an agent offers dispatch: its skills, its seat's, and its own triage tasks'.
pub fn work_skills(spec: &sf_proto::AgentSpec) -> Vec<String> {
    let mut skills = spec.skills.clone();
    if let Some(seat) = &spec.seat {
        skills.push(seat_skill(seat));
    }
    skills.push(triage_skill(&spec.name));
    // dispatch matches skills by binary search
    skills.sort();
    skills
}

/// The conventional name's prefix for an agent of this kind: `director`, `e-worker`,
/// `p-worker`, `m-steward`, `d-steward`, `r-steward`, `c-steward`.
pub fn name_prefix(role: Role, mode: Mode, focus: Option<Focus>) -> &'static str {
    match (role, mode, focus) {
        (Role::Director, ..) => "director",
        (Role::Worker, Mode::Ephemeral, _) => "e-worker",
        (Role::Worker, Mode::Persistent, _) => "p-worker",
        (Role::Steward, _, Some(Focus::Merge)) => "m-steward",
        (Role::Steward, _, Some(Focus::Docs)) => "d-steward",
        (Role::Steward, _, Some(Focus::Recovery)) => "r-steward",
        (Role::Steward, ..) => "c-steward",
    }
}

/// The conventional name for a new agent, numbered after the existing ones: the first
/// director is `director` (then `director-2`, …); others are `e-worker-1`, `m-steward-1`, …
pub fn default_name<'a>(
    role: Role,
    mode: Mode,
    focus: Option<Focus>,
    existing: impl IntoIterator<Item = &'a str>,
) -> String {
    let prefix = name_prefix(role, mode, focus);
    let mut taken_plain = false;
    let mut last = 0u32;
    for name in existing {
        if name == prefix {
            taken_plain = true;
        } else if let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|n| n.parse::<u32>().ok())
        {
            last = last.max(n);
        }
    }
    if role == Role::Director {
        if !taken_plain && last == 0 {
            return prefix.to_owned();
        }
        return format!("{prefix}-{}", last.max(1) + 1);
    }
    format!("{prefix}-{}", last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::ToolCall;

    #[test]
    fn names_follow_the_convention_numbered_after_the_existing_ones() {
        let none: [&str; 0] = [];
        assert_eq!(
            default_name(Role::Worker, Mode::Ephemeral, None, none),
            "e-worker-1"
        );
        assert_eq!(
            default_name(
                Role::Worker,
                Mode::Ephemeral,
                None,
                ["e-worker-1", "e-worker-7", "p-worker-9", "w1"]
            ),
            "e-worker-8"
        );
        assert_eq!(
            default_name(Role::Worker, Mode::Persistent, None, ["e-worker-3"]),
            "p-worker-1"
        );
        assert_eq!(
            default_name(Role::Steward, Mode::Ephemeral, Some(Focus::Merge), none),
            "m-steward-1"
        );
        assert_eq!(
            default_name(Role::Steward, Mode::Ephemeral, Some(Focus::Docs), none),
            "d-steward-1"
        );
        assert_eq!(
            default_name(Role::Director, Mode::Persistent, None, none),
            "director"
        );
        assert_eq!(
            default_name(Role::Director, Mode::Persistent, None, ["director"]),
            "director-2"
        );
        assert_eq!(
            default_name(
                Role::Director,
                Mode::Persistent,
                None,
                ["director", "director-2"]
            ),
            "director-3"
        );
    }

    #[test]
    fn a_reviewer_cannot_edit_or_push_whatever_it_holds() {
        let rules = tool_rules(JobRole::Reviewer).unwrap();
        let push = ToolCall {
            tool: "Bash",
            input: "cd x && git push origin main",
        };
        let v = rules.decide(&push, &[Capability::Push]);
        assert_eq!(v.decision, ToolDecision::Deny, "{v:?}");
        assert!(v.rule.starts_with("job[4]"), "{}", v.rule);
        let edit = ToolCall {
            tool: "Edit",
            input: "src/lib.rs",
        };
        assert_eq!(rules.decide(&edit, &[]).decision, ToolDecision::Deny);
        let read = ToolCall {
            tool: "Read",
            input: "src/lib.rs",
        };
        assert_eq!(rules.decide(&read, &[]).decision, ToolDecision::Allow);
        assert!(tool_rules(JobRole::Coder).is_none());
        assert_eq!(forbidden(JobRole::Reviewer), &[Capability::Push]);
    }
}
