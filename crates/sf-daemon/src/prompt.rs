//! The prompt a worker starts with: its role prompt (built in, or `.sf/prompts/<role>.md`),
//! who it is, the task with every note left by earlier runs, and how to finish.

use std::fmt::Write as _;

use sf_proto::{AgentSpec, Role, TaskDetail};
use sf_store::Claim;

use crate::Config;

const WORKER: &str = "You are a software engineer working on one task in a git worktree of your own. \
Work only inside this worktree and on this branch. Make small, focused commits with clear messages. \
Run the project's tests before you finish. Do not push, and do not touch other branches.";

const DIRECTOR: &str = "You are the director: you turn goals into plans of small tasks with clear \
acceptance criteria, priorities and dependencies, using `\"$SF_SFCTL\" task create` and `\"$SF_SFCTL\" dep add`.";

const STEWARD: &str = "You are a steward: you keep the project healthy. Do the one job you were \
started for, report what you did, and finish.";

/// The role prompt: the user's override if present, else the built-in one.
pub(crate) fn role_prompt(config: &Config, role: Role) -> String {
    let file = config.paths.prompts().join(format!("{role}.md"));
    std::fs::read_to_string(&file).unwrap_or_else(|_| {
        match role {
            Role::Worker => WORKER,
            Role::Director => DIRECTOR,
            Role::Steward => STEWARD,
        }
        .to_owned()
    })
}

pub(crate) fn build(
    config: &Config,
    agent: &AgentSpec,
    task: &TaskDetail,
    claim: &Claim,
    target: &str,
    skills: &[sf_core::skills::Skill],
) -> String {
    let mut p = role_prompt(config, agent.role);
    let job = sf_core::jobs::prompt_section(agent.job);
    if !job.is_empty() {
        let _ = write!(p, "\n\n{job}");
    }
    let t = &task.task;
    let _ = write!(p, "\n\n## You\n\nYou are `{}`", agent.name);
    if let Some(title) = &agent.title {
        let _ = write!(p, ", {title}");
    }
    p.push_str(".\n");
    if let Some(persona) = &agent.persona {
        let _ = writeln!(p, "{persona}");
    }
    if !agent.skills.is_empty() {
        let _ = writeln!(p, "Skills: {}.", agent.skills.join(", "));
    }
    let section = sf_core::skills::prompt_section(skills);
    if !section.is_empty() {
        let _ = write!(p, "\n{}\n", section.trim_end());
    }
    let _ = write!(
        p,
        "\n## Your task: {} ({})\n\nType: {}. Priority: {} (1 is most urgent).\n",
        t.title, t.id, t.task_type, t.priority
    );
    if !task.description.trim().is_empty() {
        let _ = write!(p, "\n{}\n", task.description.trim());
    }
    if !task.acceptance.trim().is_empty() {
        let _ = write!(
            p,
            "\n### Acceptance criteria\n\n{}\n",
            task.acceptance.trim()
        );
    }
    let notes: Vec<_> = task
        .notes
        .iter()
        .filter(|n| {
            matches!(
                n.kind.as_str(),
                "handoff" | "note" | "fix" | "block" | "reopen" | "unblock"
            )
        })
        .collect();
    let has_notes = !notes.is_empty();
    if !notes.is_empty() {
        p.push_str("\n### Notes from earlier work on this task\n");
        for n in notes {
            let _ = write!(
                p,
                "\n- [{}] {} at {}:\n{}\n",
                n.kind,
                n.author,
                n.at.format("%Y-%m-%d %H:%M UTC"),
                indent(&n.text)
            );
        }
    }
    if !task.messages.is_empty() {
        p.push_str("\n### Messages about this task\n");
        for m in &task.messages {
            let _ = write!(
                p,
                "\n- #{} from {} to {} at {}: {}\n{}\n",
                m.id,
                m.from,
                m.to,
                m.at.format("%Y-%m-%d %H:%M UTC"),
                m.subject,
                indent(&m.body)
            );
        }
    }
    let _ = write!(
        p,
        "\n## Where you are\n\nBranch `{}` (from `{target}`), in the worktree you were started in.{}\n",
        claim.branch,
        match (claim.resumed, has_notes) {
            (true, true) =>
                " An earlier worker started this task here: continue from its state (read the notes above and `git log`).",
            (true, false) =>
                " An earlier worker started this task here: continue from its state (see `git log`).",
            (false, _) => "",
        }
    );
    p.push_str(
        "\n## How to finish\n\n\
         Call sf's command line as `\"$SF_SFCTL\"` (its full path, which a login shell keeps; \
         `sfctl` on `PATH` works too when your shell keeps the `PATH` you were given).\n\
         - When the task is done and your work is committed: `\"$SF_SFCTL\" task complete --summary \"what you did\"`. \
         Anything left uncommitted is committed for you; the merge steward then tests and merges your branch.\n\
         - If the task needs no change at all: `\"$SF_SFCTL\" task complete --no-changes --summary \"why\"`.\n\
         - If you cannot finish: `\"$SF_SFCTL\" task handoff --note \"what you did, what is left, what you learned\"`; \
         the next worker continues in this worktree with your note.\n\
         - To ask the director something you cannot decide: `\"$SF_SFCTL\" message send --to director \"question\"`; \
         read answers with `\"$SF_SFCTL\" inbox`.\n\
         Then exit.\n",
    );
    if agent.capabilities.contains(&sf_proto::Capability::Push) {
        p.push_str(
            "\nYou may publish your branch on the remote: `\"$SF_SFCTL\" push` (sf pushes what \
             you committed, with the user's credentials, which you do not hold).\n",
        );
    }
    p
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
