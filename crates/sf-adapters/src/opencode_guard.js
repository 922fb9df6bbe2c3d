// sf's guard for OpenCode, written by sfd for one run (sf-adapters, opencode_guard.js).
//
// Before each tool call OpenCode awaits every plugin's `tool.execute.before(input, output)`
// (`input`: tool, sessionID, callID; `output.args`: the call's arguments, which the tool then
// runs with). This one asks sfd with `"$SF_SFCTL" guard check`, the call on stdin in Claude
// Code's hook shape, and throws when the call may not run: OpenCode then does not run it and
// gives the model the error's message as the tool's result. Anything that keeps the guard
// from answering throws too: it fails closed.

import { spawn } from "node:child_process";

// OpenCode's tools by the names sf's policy rules use (Claude Code's); others keep theirs
const NAMES = new Map([
  ["bash", "Bash"],
  ["edit", "Edit"],
  ["write", "Write"],
  ["read", "Read"],
  ["glob", "Glob"],
  ["grep", "Grep"],
  ["list", "LS"],
  ["webfetch", "WebFetch"],
  ["websearch", "WebSearch"],
  ["task", "Task"],
  ["todowrite", "TodoWrite"],
  ["todoread", "TodoRead"],
  ["multiedit", "MultiEdit"],
]);

// `filePath` -> `file_path`, `oldString` -> `old_string`: Claude Code's input keys
const snake = (key) => key.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());

const blocked = (why) => `sf guard: the call is blocked because the guard could not decide: ${why}`;

// Resolves to null when sfctl allows the call, else to why it is blocked.
function ask(call) {
  return new Promise((resolve) => {
    const sfctl = process.env.SF_SFCTL;
    if (!sfctl) {
      resolve(blocked("SF_SFCTL is not set"));
      return;
    }
    let child;
    try {
      child = spawn(sfctl, ["guard", "check", "--deadline", "2h"], {
        stdio: ["pipe", "ignore", "pipe"],
      });
    } catch (e) {
      resolve(blocked(`cannot run ${sfctl}: ${e?.message ?? e}`));
      return;
    }
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", (e) => resolve(blocked(`cannot run ${sfctl}: ${e?.message ?? e}`)));
    child.on("close", (code, signal) => {
      if (code === 0) {
        resolve(null);
        return;
      }
      const how = signal ? `was killed by ${signal}` : `exited with ${code}`;
      resolve(stderr.trim() || blocked(`${sfctl} guard check ${how}`));
    });
    child.stdin.on("error", () => {});
    child.stdin.end(JSON.stringify(call));
  });
}

export const SfGuard = async () => ({
  "tool.execute.before": async (input, output) => {
    const args = output?.args !== null && typeof output?.args === "object" ? output.args : {};
    const toolInput = {};
    for (const [key, value] of Object.entries(args)) toolInput[snake(key)] = value;
    const tool = String(input?.tool);
    const why = await ask({
      tool_name: NAMES.get(tool) ?? tool,
      tool_input: toolInput,
      tool_use_id: input?.callID,
    });
    if (why !== null) throw new Error(why);
  },
});
