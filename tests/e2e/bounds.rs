//! The daemon's bounds: a cap on connections with a clear refusal, idle connections closed
//! (event streams excepted), request bytes held across connections capped, `sfctl` giving up
//! on a daemon that never answers, and replies larger than one frame arriving whole.

use std::io::{Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sf_proto::{Hello, PROTOCOL_VERSION, Request, Response};

use crate::fleet::configure;
use crate::harness::{ChildGuard, TestDaemon, eventually, raw_connect};

/// A connection past the handshake, or the daemon's refusal.
fn try_hello(td: &TestDaemon) -> Result<UnixStream, sf_proto::ProtoError> {
    let mut s = raw_connect(&td.socket);
    let h = Hello {
        protocol: PROTOCOL_VERSION,
        client: "sf-tests bounds".into(),
        actor: None,
    };
    sf_proto::write_frame(&mut s, &h).expect("hello");
    match sf_proto::read_frame(&mut s, sf_proto::MAX_FRAME).expect("an answer") {
        Response::Welcome { .. } => Ok(s),
        Response::Error(e) => Err(e),
        other => panic!("unexpected {other:?}"),
    }
}

/// A connection past the handshake.
fn hello(td: &TestDaemon) -> UnixStream {
    try_hello(td).unwrap_or_else(|e| panic!("no welcome: {e:?}"))
}

fn started(extra: &str) -> TestDaemon {
    let mut td = TestDaemon::stopped();
    configure(&td, extra, "");
    td.spawn();
    td
}

#[test]
fn a_client_over_max_connections_is_told_sfd_is_busy_and_sfd_answers_once_they_close() {
    let td = started("max_connections = 8");
    // hold connections until sfd turns one away (a connection just closed by an earlier
    // client may still count for a moment, so the first refusal can come a little early)
    let mut held = Vec::new();
    let refusal = loop {
        match try_hello(&td) {
            Ok(s) => held.push(s),
            Err(e) => break e,
        }
        assert!(held.len() <= 8, "more than max_connections were served");
    };
    assert!(
        held.len() >= 6,
        "refused after only {} connections",
        held.len()
    );
    assert_eq!(refusal.kind, sf_proto::ErrorKind::Busy, "{refusal:?}");
    assert!(refusal.message.contains("max_connections"), "{refusal:?}");
    // and sfctl says so, under --json too (if a lingering slot came free, take it and ask
    // again)
    let mut out = td.sfctl().args(["--json", "daemon", "status"]).run();
    for _ in 0..5 {
        if !out.status.success() {
            break;
        }
        held.push(hello(&td));
        out = td.sfctl().args(["--json", "daemon", "status"]).run();
    }
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(err["error"]["kind"], "busy", "{err}");
    drop(held);
    eventually("sfd to answer again", Duration::from_secs(15), || {
        td.sfctl()
            .args(["daemon", "status"])
            .run()
            .status
            .success()
            .then_some(())
    });
}

#[test]
fn an_idle_connection_is_closed_but_an_event_stream_is_not() {
    let td = started("idle_timeout = \"1s\"");
    let mut follow = hello(&td);
    sf_proto::write_frame(
        &mut follow,
        &Request::FollowEvents {
            since: None,
            task: None,
        },
    )
    .expect("follow");
    let mut idle = hello(&td);
    // the idle one is told why and closed
    let why: Response =
        sf_proto::read_frame(&mut idle, sf_proto::MAX_FRAME).expect("the closing word");
    match why {
        Response::Error(e) => assert!(e.message.contains("without a request"), "{e:?}"),
        other => panic!("expected an error, got {other:?}"),
    }
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).expect("eof"), 0, "then closed");
    // the stream, as old as the idle one, still gets what happens next
    let id = td.create_task("After the idle timeout", &[]).task.id;
    loop {
        match sf_proto::read_frame::<_, Response>(&mut follow, sf_proto::MAX_FRAME)
            .expect("the stream is still open")
        {
            Response::Event(e) if e.task.as_ref() == Some(&id) => break,
            _ => {}
        }
    }
}

#[test]
fn connections_stalled_inside_large_frames_cannot_hold_more_than_the_budget() {
    let td = started("");
    // four clients announce a full-size frame and stall a mebibyte into it
    let max = u32::try_from(sf_proto::MAX_FRAME).expect("u32");
    let chunk = vec![b' '; 1 << 20];
    let stalled: Vec<UnixStream> = (0..4)
        .map(|_| {
            let mut s = hello(&td);
            s.write_all(&max.to_be_bytes()).expect("length");
            s.write_all(&chunk).expect("a part of the body");
            s
        })
        .collect();
    // the next one is told sfd is busy instead of being buffered too
    let mut next = hello(&td);
    next.write_all(&max.to_be_bytes()).expect("length");
    let _ = next.write_all(&chunk[..4096]);
    let refusal: Response = sf_proto::read_frame(&mut next, sf_proto::MAX_FRAME).expect("refusal");
    match refusal {
        Response::Error(e) => {
            assert_eq!(e.kind, sf_proto::ErrorKind::Busy, "{e:?}");
        }
        other => panic!("expected busy, got {other:?}"),
    }
    // ordinary (small) requests go through meanwhile
    td.sfctl().args(["task", "list"]).success();
    drop(stalled);
    eventually("sfd to answer again", Duration::from_secs(15), || {
        td.sfctl()
            .args(["task", "list"])
            .run()
            .status
            .success()
            .then_some(())
    });
}

#[test]
fn sfctl_gives_up_on_a_socket_that_never_answers_with_exit_3_and_a_reason() {
    let td = TestDaemon::stopped();
    let socket = td.root.join("mute.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    // accepts, reads the hello, never answers
    let _mute = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let mut child = ChildGuard(
        td.sfctl()
            .args(["--json", "--socket"])
            .arg(&socket)
            .args(["task", "list"])
            .env("SF_CONNECT_TIMEOUT", "1")
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sfctl"),
    );
    let start = Instant::now();
    let status = eventually("sfctl to give up", Duration::from_secs(20), || {
        child.0.try_wait().expect("try_wait")
    });
    assert_eq!(status.code(), Some(3), "took {:?}", start.elapsed());
    let mut out = String::new();
    child
        .0
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json error");
    assert_eq!(v["error"]["kind"], "unreachable", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("did not answer") && message.contains("handshake"),
        "{message}"
    );
}

#[test]
fn a_reply_larger_than_a_frame_arrives_whole_and_an_applied_close_is_reported_as_done() {
    let td = started("");
    let id = td.create_task("Many long notes", &[]).task.id.to_string();
    let mut client = td.client();
    // 300 messages of 60 KiB to the task: its detail (which lists them) is over 17 MiB,
    // more than one frame; each send answers with the message alone
    let body = "m".repeat(60 * 1024);
    for i in 0..300 {
        client
            .request(&Request::SendMessage {
                message: sf_proto::NewMessage {
                    to: Some(format!("task:{id}")),
                    task: None,
                    subject: None,
                    body: format!("{i} {body}"),
                    reply_to: None,
                    token: None,
                    kind: sf_proto::MessageType::Generic,
                },
            })
            .expect("send a message");
    }
    let shown = td.sfctl().args(["task", "show", &id, "--json"]).run();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        shown.stdout.len() > sf_proto::MAX_FRAME,
        "{}",
        shown.stdout.len()
    );
    let detail: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert_eq!(detail["messages"].as_array().map(Vec::len), Some(300));
    // a change whose answer is that large is applied and reported as done
    td.sfctl()
        .args(["task", "close", &id, "--reason", "done"])
        .success();
    assert_eq!(td.show_task(&id).task.status, sf_proto::TaskStatus::Closed);
}

/// Sets sfd's soft limit on open descriptors (`RLIMIT_NOFILE`) to `soft`, or back to its
/// hard limit.
fn set_open_files_limit(pid: u32, soft: Option<u64>) {
    crate::harness::set_soft_limit(pid, nix::libc::RLIMIT_NOFILE, soft);
}

#[test]
fn a_run_sfd_cannot_start_for_lack_of_descriptors_is_not_charged_to_the_task() {
    let td = crate::fleet::fleet("tick_interval = \"200ms\"");
    let s = crate::fleet::script(&td, "w", "write f.txt x\ncommit f\ncomplete\n");
    crate::fleet::worker(&td, "w1", &s, &[]);
    let id = td
        .create_task(
            "Later",
            &["--scheduled-for", &crate::harness::rfc3339_from_now(3)],
        )
        .task
        .id
        .to_string();
    // before it is due, sfd is left without a free descriptor, as with thousands of
    // clients connected
    let pid = td.child_pid().expect("sfd");
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("sfd's descriptors")
        .count() as u64;
    set_open_files_limit(pid, Some(open));
    eventually(
        "sfd to fail a start for lack of descriptors",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(&td.stderr_path)
                .unwrap_or_default()
                .contains("worker failed to start")
                .then_some(())
        },
    );
    set_open_files_limit(pid, None);
    let t = crate::fleet::wait_status(&td, &id, sf_proto::TaskStatus::Review);
    assert_eq!(t.attempts, 0, "the task was charged: {:?}", t.notes);
    assert!(
        t.runs
            .iter()
            .any(|r| r.outcome.as_deref() == Some("spawn_failed")),
        "{:?}",
        t.runs
    );
}
