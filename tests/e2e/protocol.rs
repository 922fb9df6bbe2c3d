//! The wire: handshake, version mismatch, malformed, oversized and unknown frames, the
//! handshake timeout, socket permissions, and many clients at once.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use sf_proto::{ErrorKind, Hello, NewTask, PROTOCOL_VERSION, Request, Response, TaskFilter};

use crate::harness::{TestDaemon, raw_connect, read_raw_frame, write_raw_frame};

fn hello(version: u32) -> Vec<u8> {
    serde_json::to_vec(&Hello {
        protocol: version,
        client: "raw test".into(),
        actor: None,
    })
    .expect("serialize hello")
}

/// A raw connection that has completed the handshake.
fn handshaken(td: &TestDaemon) -> std::os::unix::net::UnixStream {
    let mut s = raw_connect(&td.socket);
    write_raw_frame(&mut s, &hello(PROTOCOL_VERSION));
    let welcome = read_raw_frame(&mut s);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["data"]["protocol"], PROTOCOL_VERSION);
    s
}

fn request(s: &mut std::os::unix::net::UnixStream, req: &Request) -> serde_json::Value {
    write_raw_frame(s, &serde_json::to_vec(req).expect("serialize request"));
    read_raw_frame(s)
}

fn assert_error(v: &serde_json::Value, kind: &str) -> String {
    assert_eq!(v["type"], "error", "expected an error reply, got {v}");
    assert_eq!(v["data"]["kind"], kind, "{v}");
    v["data"]["message"]
        .as_str()
        .expect("an error message")
        .to_owned()
}

/// Whether the peer closed the connection (EOF or reset) within the stream's read timeout.
fn closed(s: &mut std::os::unix::net::UnixStream) -> bool {
    let mut buf = [0u8; 1];
    match s.read(&mut buf) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

fn still_serves(td: &TestDaemon) {
    let mut c = td.client();
    let r = c
        .request(&Request::Status)
        .expect("status from a fresh client");
    assert!(matches!(r, Response::Status(_)), "{r:?}");
}

#[test]
fn a_wrong_protocol_version_is_refused_naming_both_versions() {
    let td = TestDaemon::start();
    let mut s = raw_connect(&td.socket);
    write_raw_frame(&mut s, &hello(999));
    let reply = read_raw_frame(&mut s);
    let msg = assert_error(&reply, "incompatible_protocol");
    assert!(
        msg.contains("999"),
        "the message should name the client's version: {msg}"
    );
    assert!(
        msg.contains(&PROTOCOL_VERSION.to_string()),
        "and the daemon's: {msg}"
    );
    assert!(
        closed(&mut s),
        "the connection is closed after a refused handshake"
    );
    still_serves(&td);
}

#[test]
fn a_request_before_the_handshake_is_refused() {
    let td = TestDaemon::start();
    let mut s = raw_connect(&td.socket);
    write_raw_frame(&mut s, &serde_json::to_vec(&Request::Status).expect("json"));
    let reply = read_raw_frame(&mut s);
    assert_eq!(reply["type"], "error", "{reply}");
    still_serves(&td);
}

#[test]
fn a_malformed_frame_gets_an_error_and_the_connection_stays_usable() {
    let td = TestDaemon::start();
    let mut s = handshaken(&td);
    write_raw_frame(&mut s, b"{this is not json");
    let reply = read_raw_frame(&mut s);
    assert_error(&reply, "invalid_input");
    write_raw_frame(&mut s, &[0xff, 0xfe, 0x00, 0x80]);
    let reply = read_raw_frame(&mut s);
    assert_error(&reply, "invalid_input");
    let status = request(&mut s, &Request::Status);
    assert_eq!(
        status["type"], "status",
        "the same connection still works: {status}"
    );
    still_serves(&td);
}

#[test]
fn an_unknown_request_type_gets_an_error_reply() {
    let td = TestDaemon::start();
    let mut s = handshaken(&td);
    write_raw_frame(&mut s, br#"{"type":"frobnicate","id":"x"}"#);
    let reply = read_raw_frame(&mut s);
    let msg = assert_error(&reply, "invalid_input");
    assert!(
        msg.contains("frobnicate"),
        "the error should name the request: {msg}"
    );
    write_raw_frame(&mut s, br#"{"type":"show_task"}"#);
    let reply = read_raw_frame(&mut s);
    assert_eq!(reply["type"], "error", "a request missing a field: {reply}");
    let r = request(
        &mut s,
        &Request::ListTasks {
            filter: TaskFilter::default(),
        },
    );
    assert_eq!(r["type"], "tasks", "{r}");
}

#[test]
fn an_oversized_frame_gets_an_error_and_other_clients_are_unaffected() {
    let td = TestDaemon::start();
    let mut other = td.client();
    let mut s = handshaken(&td);
    let too_big = u32::try_from(sf_proto::MAX_FRAME + 1).expect("fits");
    s.write_all(&too_big.to_be_bytes()).expect("write length");
    s.flush().expect("flush");
    let reply = read_raw_frame(&mut s);
    let msg = assert_error(&reply, "invalid_input");
    assert!(
        msg.contains("limit") || msg.contains("large") || msg.contains("exceed"),
        "{msg}"
    );
    let r = other
        .request(&Request::Status)
        .expect("the other client still works");
    assert!(matches!(r, Response::Status(_)));
    still_serves(&td);
    td.create_task("after the oversized frame", &[]);
}

#[test]
fn an_oversized_hello_is_refused() {
    let td = TestDaemon::start();
    let mut s = raw_connect(&td.socket);
    let len = u32::try_from(sf_proto::MAX_HELLO_FRAME + 1).expect("fits");
    s.write_all(&len.to_be_bytes()).expect("write length");
    // The daemon answers with an error or hangs up; either way it must not wait for 64 KiB.
    let mut head = [0u8; 4];
    let started = Instant::now();
    match s.read_exact(&mut head) {
        Ok(()) => {
            let mut body = vec![0u8; u32::from_be_bytes(head) as usize];
            s.read_exact(&mut body).expect("read body");
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(v["type"], "error", "{v}");
        }
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "{e}"
        ),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    still_serves(&td);
}

#[test]
fn a_frame_split_across_writes_is_reassembled() {
    let td = TestDaemon::start();
    let mut s = handshaken(&td);
    let body = serde_json::to_vec(&Request::Status).expect("json");
    let len = u32::try_from(body.len()).expect("fits").to_be_bytes();
    s.write_all(&len[..2]).expect("write");
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&len[2..]).expect("write");
    s.write_all(&body[..3]).expect("write");
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&body[3..]).expect("write");
    let reply = read_raw_frame(&mut s);
    assert_eq!(reply["type"], "status", "{reply}");
}

#[test]
fn a_client_vanishing_mid_frame_does_not_hurt_the_daemon() {
    let td = TestDaemon::start();
    for _ in 0..20 {
        let mut s = handshaken(&td);
        s.write_all(&100u32.to_be_bytes()).expect("write");
        s.write_all(b"{\"type\":").expect("write");
        drop(s);
    }
    still_serves(&td);
}

/// Slow by nature: it waits out the daemon's 10 s handshake timeout.
#[test]
fn slow_a_client_that_never_says_hello_is_disconnected() {
    let td = TestDaemon::start();
    let mut s = raw_connect(&td.socket);
    s.set_read_timeout(Some(Duration::from_secs(
        sf_proto::HANDSHAKE_TIMEOUT_SECS + 10,
    )))
    .expect("timeout");
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(sf_proto::HANDSHAKE_TIMEOUT_SECS - 1)
            && waited < Duration::from_secs(sf_proto::HANDSHAKE_TIMEOUT_SECS + 8),
        "disconnected after {waited:?}"
    );
    still_serves(&td);
}

#[test]
fn the_socket_is_private() {
    let td = TestDaemon::start();
    let dir = td.socket.parent().expect("socket dir");
    let dir_mode = std::fs::metadata(dir)
        .expect("stat socket dir")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700, "socket directory mode {dir_mode:o}");
    let meta = std::fs::metadata(&td.socket).expect("stat socket");
    assert!(meta.file_type().is_socket());
    let mode = meta.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
}

#[test]
fn two_hundred_clients_creating_tasks_at_once_all_succeed() {
    const N: usize = 200;
    let td = TestDaemon::start();
    let barrier = Arc::new(Barrier::new(N));
    let socket = td.socket.clone();
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut c =
                    sf_client::Client::connect(&socket, "load", Some(format!("agent:c{i}")))
                        .map_err(|e| format!("client {i}: connect: {e:?}"))?;
                barrier.wait();
                let task = NewTask {
                    title: format!("task {i}"),
                    ..NewTask::default()
                };
                match c.request(&Request::CreateTask { task }) {
                    Ok(Response::Task(t)) => Ok(t.task.id),
                    other => Err(format!("client {i}: {other:?}")),
                }
            })
        })
        .collect();
    let results: Vec<Result<_, String>> = handles
        .into_iter()
        .map(|h| h.join().expect("client thread"))
        .collect();
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {N} failed: {failures:#?}\n{}",
        failures.len(),
        td.stderr_tail()
    );
    let mut ids: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N, "every task got its own id");
    let listed = td.list_tasks(&["--limit", "1000"]);
    assert_eq!(listed.len(), N);
    assert_eq!(
        td.events(&["--limit", "1000"]).len(),
        N,
        "one event per creation"
    );
}

#[test]
fn request_errors_keep_their_kind() {
    let td = TestDaemon::start();
    let mut c = td.client();
    match c.request(&Request::ShowTask {
        id: "zzzzzz".into(),
    }) {
        Err(sf_client::ClientError::Refused(e)) => assert_eq!(e.kind, ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
    match c.request(&Request::ShowTask {
        id: "not an id!".into(),
    }) {
        Err(sf_client::ClientError::Refused(e)) => assert_eq!(e.kind, ErrorKind::InvalidInput),
        other => panic!("{other:?}"),
    }
    let r = c
        .request(&Request::Status)
        .expect("the connection survives refusals");
    assert!(matches!(r, Response::Status(_)));
}
