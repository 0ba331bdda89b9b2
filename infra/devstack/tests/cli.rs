//! devstack's command line: clear errors for the usual mistakes.

use std::process::Command;

fn devstack(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_devstack"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn an_emulator_that_does_not_answer_is_named() {
    let state = std::env::temp_dir().join(format!("devstack-cli-{}.json", std::process::id()));
    let (code, err) = devstack(&["provision", "--endpoint", "http://127.0.0.1:9", "--state", state.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("emulator at http://127.0.0.1:9") && err.contains("make emulator"), "{err}");
}

#[test]
fn a_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = devstack(&["up", "--listen", &addr, "--endpoint", "http://127.0.0.1:9"]);
    assert_eq!(code, 1);
    assert!(err.contains(&addr) && err.contains("already in use"), "{err}");
}

#[test]
fn a_missing_template_is_named() {
    let (code, err) = devstack(&["provision", "--template", "does/not/exist.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("does/not/exist.yaml"), "{err}");
}

#[test]
fn a_missing_function_binary_says_which_build_to_run() {
    let (code, err) = devstack(&["up", "--listen", "127.0.0.1:0", "--bin-dir", "/nonexistent/release"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("products-api") && err.contains("cargo build --release") && err.contains("-p products-api"),
        "{err}"
    );
}
