//! Parsing rules of the command line, checked with `try_parse_from`.

use super::*;
use clap::error::ErrorKind;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("thingcall").chain(args.iter().copied()))
}

fn invoke(args: &[&str]) -> InvokeArgs {
    match parse(args).unwrap().command {
        Command::Invoke(a) => a,
        other => panic!("expected invoke, got {other:?}"),
    }
}

#[test]
fn cli_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn invoke_defaults() {
    let a = invoke(&["invoke", "demo-1", "echo"]);
    assert_eq!(a.target, "demo-1");
    assert_eq!(a.method, "echo");
    assert_eq!(a.body.payload, None);
    assert_eq!(a.body.payload_file, None);
    assert_eq!(a.timeout, Duration::from_secs(5));
    assert_eq!(a.connect_timeout, Duration::ZERO);
    assert_eq!(a.content_type, None);
    assert!(a.metadata.is_empty());
    assert_eq!(a.idempotency_key, None);
    assert!(!a.verbose);
}

#[test]
fn invoke_all_flags() {
    let a = invoke(&[
        "invoke",
        "demo-1",
        "echo",
        "--payload",
        "hello",
        "--timeout",
        "1m 30s",
        "--connect-timeout",
        "250ms",
        "--content-type",
        "text/plain",
        "--metadata",
        "a=1",
        "--metadata",
        "b=x=y",
        "--idempotency-key",
        "k1",
        "-v",
    ]);
    assert_eq!(a.body.payload.as_deref(), Some("hello"));
    assert_eq!(a.timeout, Duration::from_secs(90));
    assert_eq!(a.connect_timeout, Duration::from_millis(250));
    assert_eq!(a.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        a.metadata,
        vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "x=y".to_owned())
        ]
    );
    assert_eq!(a.idempotency_key.as_deref(), Some("k1"));
    assert!(a.verbose);
}

#[test]
fn invoke_payload_file_dash_is_stdin() {
    let a = invoke(&["invoke", "d", "m", "--payload-file", "-"]);
    assert_eq!(a.body.payload_file, Some(PathBuf::from("-")));
}

#[test]
fn invoke_rejects_bad_input() {
    let kind = |args: &[&str]| parse(args).unwrap_err().kind();
    assert_eq!(
        kind(&["invoke", "d", "m", "--timeout", "soon"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        kind(&["invoke", "d", "m", "--connect-timeout", "5"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        kind(&["invoke", "d", "m", "--metadata", "novalue"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        kind(&["invoke", "d", "m", "--metadata", "=v"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        kind(&["invoke", "d", "m", "--payload", "x", "--payload-file", "f"]),
        ErrorKind::ArgumentConflict
    );
    assert_eq!(kind(&["invoke", "d"]), ErrorKind::MissingRequiredArgument);
    assert_eq!(
        parse(&["invoke", "d", "m", "--nope"])
            .unwrap_err()
            .exit_code(),
        2
    );
}

#[test]
fn server_flag_is_global_and_validated() {
    let cli = parse(&["devices", "--server", "http://gw:9000"]).unwrap();
    assert_eq!(cli.server, "http://gw:9000");
    let cli = parse(&["--server", "http://gw:9000", "device", "x"]).unwrap();
    assert_eq!(cli.server, "http://gw:9000");
    assert_eq!(
        parse(&["--server", "gw:9000", "devices"])
            .unwrap_err()
            .kind(),
        ErrorKind::ValueValidation
    );
    if std::env::var_os("THINGCALL_SERVER").is_none() {
        assert_eq!(parse(&["devices"]).unwrap().server, DEFAULT_SERVER);
    }
}

#[test]
fn watch_args() {
    match parse(&["watch"]).unwrap().command {
        Command::Watch(a) => {
            assert_eq!(a.pattern, None);
            assert!(!a.events);
        }
        other => panic!("{other:?}"),
    }
    let cli = parse(&["watch", "pump-*", "--events", "--json"]).unwrap();
    assert_eq!(cli.output(), Output::Json);
    match cli.command {
        Command::Watch(a) => {
            assert_eq!(a.pattern.as_deref(), Some("pump-*"));
            assert!(a.events);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn devices_and_device_args() {
    let cli = parse(&["devices", "demo-*", "--json"]).unwrap();
    assert_eq!(cli.output(), Output::Json);
    match cli.command {
        Command::Devices(a) => assert_eq!(a.pattern.as_deref(), Some("demo-*")),
        other => panic!("{other:?}"),
    }
    match parse(&["devices"]).unwrap().command {
        Command::Devices(a) => assert!(a.pattern.is_none()),
        other => panic!("{other:?}"),
    }
    match parse(&["device", "demo-1"]).unwrap().command {
        Command::Device(a) => assert_eq!(a.id, "demo-1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse(&["device"]).unwrap_err().kind(),
        ErrorKind::MissingRequiredArgument
    );
    assert!(parse(&[]).is_err());
}

/// Where the environment may set THINGCALL_OUTPUT, only the explicit
/// flags are checked.
#[test]
fn output_flag_is_global_with_json_alias() {
    let out = |args: &[&str]| parse(args).unwrap().output();
    if std::env::var_os("THINGCALL_OUTPUT").is_none() {
        assert_eq!(out(&["devices"]), Output::Text);
    }
    assert_eq!(out(&["-o", "json", "devices"]), Output::Json);
    assert_eq!(out(&["devices", "--output", "json"]), Output::Json);
    assert_eq!(out(&["invoke", "d", "m", "-o", "text"]), Output::Text);
    assert_eq!(out(&["device", "x", "--output=json"]), Output::Json);
    // The old flag, on every command and before the command too.
    assert_eq!(out(&["invoke", "d", "m", "--json"]), Output::Json);
    assert_eq!(out(&["--json", "devices"]), Output::Json);
    assert_eq!(out(&["bench", "--json", "--quiet"]), Output::Json);
    // --json wins over an explicit text (as over THINGCALL_OUTPUT).
    assert_eq!(out(&["-o", "text", "devices", "--json"]), Output::Json);
    assert_eq!(
        parse(&["-o", "yaml", "devices"]).unwrap_err().kind(),
        ErrorKind::InvalidValue
    );
}

#[test]
fn json_alias_is_hidden_and_shapes_documented() {
    use clap::CommandFactory;
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains("--output <FORMAT>"), "{help}");
    let lists_json = |help: &str| help.lines().any(|l| l.trim_start().starts_with("--json"));
    assert!(!lists_json(&help), "the alias stays hidden: {help}");
    for field in ["payloadEncoding", "requestId", "deviceTime", "exitCode"] {
        assert!(help.contains(field), "{field}: {help}");
    }
    let mut cmd = Cli::command();
    // Globals reach the subcommands when the command is built.
    cmd.build();
    let bench = cmd.find_subcommand_mut("bench").unwrap();
    let help = bench.render_long_help().to_string();
    assert!(!lists_json(&help), "{help}");
    assert!(help.contains("--output <FORMAT>"), "global: {help}");
}

#[test]
fn usage_errors_know_whether_json_was_asked_for() {
    let argv = |args: &[&str]| {
        std::iter::once("thingcall")
            .chain(args.iter().copied())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert!(json_requested(argv(&[
        "-o", "json", "invoke", "d", "m", "--nope"
    ])));
    assert!(json_requested(argv(&["devices", "--json", "--nope"])));
    assert!(json_requested(argv(&["invoke", "--output=json"])));
    if std::env::var_os("THINGCALL_OUTPUT").is_none() {
        assert!(!json_requested(argv(&["invoke", "d", "m", "--nope"])));
    }
    assert!(!json_requested(argv(&["-o", "text", "invoke", "--nope"])));
    let err = parse(&["invoke", "d", "m", "--nope"]).unwrap_err();
    assert_eq!(usage_message(&err), "unexpected argument '--nope' found");
    let err = parse(&["completions"]).unwrap_err();
    assert_eq!(
        usage_message(&err),
        "the following required arguments were not provided: <SHELL>"
    );
}

#[test]
fn completions_args() {
    for (name, shell) in [
        ("bash", CompletionShell::Bash),
        ("zsh", CompletionShell::Zsh),
        ("fish", CompletionShell::Fish),
    ] {
        match parse(&["completions", name]).unwrap().command {
            Command::Completions(a) => assert_eq!(a.shell, shell),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        parse(&["completions", "tcsh"]).unwrap_err().kind(),
        ErrorKind::InvalidValue
    );
    assert_eq!(
        parse(&["completions"]).unwrap_err().kind(),
        ErrorKind::MissingRequiredArgument
    );
}

#[test]
fn help_documents_exit_codes() {
    use clap::CommandFactory;
    let help = Cli::command().render_help().to_string();
    assert!(help.contains("69  gateway unreachable"), "{help}");
}
