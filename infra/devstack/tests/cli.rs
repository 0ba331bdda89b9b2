//! devstack's command line: clear errors for the usual mistakes.

use std::process::Command;

/// Runs devstack with `endpoint` as its only AWS endpoint (none at all if `None`).
fn devstack_at(endpoint: Option<&str>, args: &[&str]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_devstack"));
    command.args(args).current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("AWS_ENDPOINT_URL")) {
        command.env_remove(name);
    }
    if let Some(endpoint) = endpoint {
        command.env("AWS_ENDPOINT_URL", endpoint);
    }
    let out = command.output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn devstack(args: &[&str]) -> (i32, String) {
    devstack_at(Some("http://127.0.0.1:9"), args)
}

fn temp_state() -> String {
    std::env::temp_dir().join(format!("devstack-cli-{}.json", std::process::id())).to_string_lossy().into_owned()
}

#[test]
fn an_emulator_that_does_not_answer_is_named() {
    let (code, err) = devstack(&["provision", "--state", &temp_state()]);
    assert_eq!(code, 1);
    assert!(err.contains("at http://127.0.0.1:9 does not answer") && err.contains("make emulator"), "{err}");
}

#[test]
fn without_an_endpoint_nothing_is_provisioned_into_real_aws() {
    let (code, err) = devstack_at(None, &["provision", "--state", &temp_state()]);
    assert_eq!(code, 1);
    assert!(err.contains("no AWS endpoint is set") && err.contains("make emulator"), "{err}");
}

#[test]
fn a_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = devstack(&["up", "--listen", &addr]);
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
