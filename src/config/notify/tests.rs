use super::super::Config;
use super::*;

fn err(text: &str) -> String {
    Config::parse(text, "agent.toml")
        .expect_err("config should be refused")
        .to_string()
}

fn notify(text: &str) -> Vec<NotifyConfig> {
    Config::parse(text, "agent.toml")
        .expect("config is valid")
        .notify
}

/// A file in a fresh temporary directory, for `*_file` keys.
fn secret_file(contents: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, contents).unwrap();
    let path = path.display().to_string();
    (dir, path)
}

#[test]
fn no_notify_table_means_no_notifiers() {
    assert!(notify("").is_empty());
}

#[test]
fn a_webhook_announces_all_four_events_by_default() {
    let n = notify("[[notify]]\nkind = \"webhook\"\nurl = \"https://hooks.example/tidewatch\"\n");
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].kind, NotifyKind::Webhook);
    assert_eq!(n[0].url.as_str(), "https://hooks.example/tidewatch");
    assert_eq!(n[0].events, EventKind::ALL);
    assert!(n[0].token.is_none() && n[0].email.is_none());
}

#[test]
fn events_are_kept_in_order_without_repeats() {
    let n = notify(
        "[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/x\"\nevents = [\"failed\", \"rolled_back\", \"failed\"]\n",
    );
    assert_eq!(n[0].events, [EventKind::RolledBack, EventKind::Failed]);
    assert!(n[0].wants(EventKind::Failed) && !n[0].wants(EventKind::Updated));
}

#[test]
fn an_unknown_kind_is_named_with_its_place() {
    let e = err("[[notify]]\nkind = \"pager\"\nurl = \"https://x.example\"\n");
    assert!(e.starts_with("agent.toml:2:8:"), "{e}");
    assert!(e.contains("pager") && e.contains("gotify"), "{e}");
}

#[test]
fn an_unknown_event_is_named_with_its_place() {
    let e = err("[[notify]]\nkind = \"webhook\"\nurl = \"https://x.example\"\nevents = [\"updated\", \"exploded\"]\n");
    assert!(e.starts_with("agent.toml:4:"), "{e}");
    assert!(e.contains("exploded") && e.contains("rolled_back"), "{e}");
}

#[test]
fn an_empty_event_list_is_refused() {
    let e = err("[[notify]]\nkind = \"webhook\"\nurl = \"https://x.example\"\nevents = []\n");
    assert!(e.starts_with("agent.toml:4:10:"), "{e}");
    assert!(e.contains("at least one"), "{e}");
}

#[test]
fn a_notifier_needs_a_url_of_its_kind() {
    let e = err("[[notify]]\nkind = \"discord\"\n");
    assert!(e.starts_with("agent.toml:2:8:"), "{e}");
    assert!(e.contains("needs url"), "{e}");

    let e = err("[[notify]]\nkind = \"webhook\"\nurl = \"smtp://mail.example\"\n");
    assert!(e.starts_with("agent.toml:3:7:"), "{e}");
    assert!(e.contains("http:// or https://"), "{e}");

    let e = err("[[notify]]\nkind = \"email\"\nurl = \"https://mail.example\"\nfrom = \"a@b.example\"\nto = [\"c@d.example\"]\n");
    assert!(e.starts_with("agent.toml:3:7:"), "{e}");
    assert!(e.contains("smtps://"), "{e}");

    let e = err("[[notify]]\nkind = \"webhook\"\nurl = \"not a url\"\n");
    assert!(e.starts_with("agent.toml:3:7:"), "{e}");
    assert!(e.contains("not a URL"), "{e}");
}

#[test]
fn a_secret_url_can_live_in_a_file_and_is_never_shown() {
    let (_dir, path) = secret_file("https://hooks.slack.com/services/T0/B0/SeCrEt\n");
    let n = notify(&format!(
        "[[notify]]\nkind = \"slack\"\nurl_file = \"{path}\"\n"
    ));
    assert_eq!(n[0].url.path(), "/services/T0/B0/SeCrEt");
    assert_eq!(n[0].target(), "https://hooks.slack.com");
    assert!(!format!("{n:?}").contains("SeCrEt"));

    let (_dir, path) = secret_file("htps:/SeCrEt nonsense\n");
    let e = err(&format!(
        "[[notify]]\nkind = \"slack\"\nurl_file = \"{path}\"\n"
    ));
    assert!(e.starts_with("agent.toml:3:12:"), "{e}");
    assert!(!e.contains("SeCrEt"), "{e}");

    let e = err(&format!(
        "[[notify]]\nkind = \"slack\"\nurl = \"https://x.example\"\nurl_file = \"{path}\"\n"
    ));
    assert!(e.starts_with("agent.toml:4:"), "{e}");
    assert!(e.contains("exclusive"), "{e}");
}

#[test]
fn gotify_needs_its_token_from_a_file() {
    let e = err("[[notify]]\nkind = \"gotify\"\nurl = \"https://push.example\"\n");
    assert!(e.starts_with("agent.toml:2:8:"), "{e}");
    assert!(e.contains("token_file"), "{e}");

    let e = err("[[notify]]\nkind = \"gotify\"\nurl = \"https://push.example\"\ntoken_file = \"/nonexistent/gotify.token\"\n");
    assert!(e.starts_with("agent.toml:4:14:"), "{e}");
    assert!(e.contains("/nonexistent/gotify.token"), "{e}");

    let (_dir, path) = secret_file("AbC123\n");
    let n = notify(&format!(
        "[[notify]]\nkind = \"gotify\"\nurl = \"https://push.example\"\ntoken_file = \"{path}\"\n"
    ));
    assert_eq!(n[0].token.as_ref().map(Secret::expose), Some("AbC123"));
    assert!(!format!("{n:?}").contains("AbC123"));
}

#[test]
fn keys_of_another_kind_are_refused() {
    let e = err(
        "[[notify]]\nkind = \"slack\"\nurl = \"https://x.example\"\nto = [\"ops@example.com\"]\n",
    );
    assert!(e.starts_with("agent.toml:4:6:"), "{e}");
    assert!(e.contains("`to` is only for kind = \"email\""), "{e}");

    let e =
        err("[[notify]]\nkind = \"webhook\"\nurl = \"https://x.example\"\ntoken_file = \"/x\"\n");
    assert!(e.starts_with("agent.toml:4:"), "{e}");
    assert!(e.contains("\"gotify\" or \"ntfy\""), "{e}");
}

#[test]
fn email_takes_smtp_urls_with_their_default_ports() {
    let n = notify(
        r#"
[[notify]]
kind = "email"
url = "smtp://mail.example.com"
from = "Tidewatch <tidewatch@box1.example.com>"
to = ["ops@example.com", "dev@example.com"]
events = ["failed"]
[[notify]]
kind = "email"
url = "smtps://mail.example.com"
from = "tidewatch@box1.example.com"
to = ["ops@example.com"]
[[notify]]
kind = "email"
url = "smtp+starttls://mail.example.com:2525"
from = "tidewatch@box1.example.com"
to = ["ops@example.com"]
"#,
    );
    let email: Vec<&EmailConfig> = n.iter().map(|c| c.email.as_ref().unwrap()).collect();
    assert_eq!((email[0].security, email[0].port), (SmtpSecurity::None, 25));
    assert_eq!(email[0].host, "mail.example.com");
    assert_eq!(
        email[0].from.to_string(),
        "Tidewatch <tidewatch@box1.example.com>"
    );
    assert_eq!(email[0].to.len(), 2);
    assert_eq!((email[1].security, email[1].port), (SmtpSecurity::Tls, 465));
    assert_eq!(
        (email[2].security, email[2].port),
        (SmtpSecurity::StartTls, 2525)
    );
}

#[test]
fn email_needs_valid_addresses() {
    let e = err(
        "[[notify]]\nkind = \"email\"\nurl = \"smtp://m.example\"\nto = [\"ops@example.com\"]\n",
    );
    assert!(e.starts_with("agent.toml:2:8:"), "{e}");
    assert!(e.contains("needs from"), "{e}");

    let e = err("[[notify]]\nkind = \"email\"\nurl = \"smtp://m.example\"\nfrom = \"tw@example.com\"\nto = [\"ops@example.com\", \"not an address\"]\n");
    assert!(e.starts_with("agent.toml:5:26:"), "{e}");
    assert!(e.contains("\"not an address\""), "{e}");

    let e = err("[[notify]]\nkind = \"email\"\nurl = \"smtp://m.example\"\nfrom = \"tw@example.com\"\nto = []\n");
    assert!(e.starts_with("agent.toml:5:6:"), "{e}");
}

#[test]
fn smtp_credentials_need_an_encrypted_connection() {
    let (_dir, path) = secret_file("hunter2\n");
    let base =
        "[[notify]]\nkind = \"email\"\nfrom = \"tw@example.com\"\nto = [\"ops@example.com\"]\n";

    let e = err(&format!(
        "{base}url = \"smtp://m.example\"\nusername = \"tw\"\npassword_file = \"{path}\"\n"
    ));
    assert!(e.starts_with("agent.toml:6:12:"), "{e}");
    assert!(e.contains("encrypted"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");

    let e = err(&format!(
        "{base}url = \"smtps://m.example\"\nusername = \"tw\"\n"
    ));
    assert!(e.contains("username needs password_file"), "{e}");

    let e = err(&format!("{base}url = \"smtps://tw:hunter2@m.example\"\n"));
    assert!(e.starts_with("agent.toml:5:7:"), "{e}");
    assert!(
        e.contains("username and password_file") && !e.contains("hunter2"),
        "{e}"
    );

    let n = notify(&format!(
        "{base}url = \"smtps://m.example\"\nusername = \"tw\"\npassword_file = \"{path}\"\n"
    ));
    let login = n[0].email.as_ref().unwrap().login.as_ref().unwrap();
    assert_eq!(
        (login.username.as_str(), login.password.expose()),
        ("tw", "hunter2")
    );
    assert!(!format!("{n:?}").contains("hunter2"));
}

#[test]
fn ntfy_and_gotify_tokens_are_refused_over_plain_http_to_another_machine() {
    let (_dir, path) = secret_file("AbC123\n");
    for kind in ["gotify", "ntfy"] {
        let e = err(&format!(
            "[[notify]]\nkind = \"{kind}\"\nurl = \"http://push.example/ops\"\ntoken_file = \"{path}\"\n"
        ));
        assert!(e.starts_with("agent.toml:3:7:"), "{e}");
        assert!(e.contains("https://") && e.contains(kind), "{e}");
        assert!(!e.contains("AbC123"), "{e}");

        // Loopback may stay plain, like SMTP's relay on the host; https is always fine.
        for url in [
            "http://127.0.0.1:8080/ops",
            "http://localhost/ops",
            "http://[::1]:80/ops",
            "https://push.example/ops",
        ] {
            let n = notify(&format!(
                "[[notify]]\nkind = \"{kind}\"\nurl = \"{url}\"\ntoken_file = \"{path}\"\n"
            ));
            assert_eq!(n.len(), 1, "{url}");
        }
    }

    // ntfy without a token may be plain; with a password in its URL it may not.
    notify("[[notify]]\nkind = \"ntfy\"\nurl = \"http://ntfy.lan/ops\"\n");
    let e = err("[[notify]]\nkind = \"ntfy\"\nurl = \"http://tw:hunter2@ntfy.lan/ops\"\n");
    assert!(
        e.starts_with("agent.toml:3:7:") && !e.contains("hunter2"),
        "{e}"
    );

    // A URL from url_file is pointed at by url_file.
    let (_url_dir, url_path) = secret_file("http://push.example\n");
    let e = err(&format!(
        "[[notify]]\nkind = \"gotify\"\nurl_file = \"{url_path}\"\ntoken_file = \"{path}\"\n"
    ));
    assert!(e.starts_with("agent.toml:3:12:"), "{e}");
    assert!(!e.contains("push.example"), "{e}");
}

#[test]
fn mqtt_defaults_to_port_1883_the_tidewatch_prefix_and_no_discovery() {
    let n = notify("[[notify]]\nkind = \"mqtt\"\nurl = \"mqtt://broker.lan\"\n");
    let m = n[0].mqtt.as_ref().expect("mqtt settings");
    assert_eq!(
        (m.host.as_str(), m.port, m.tls),
        ("broker.lan", 1883, false)
    );
    assert_eq!(m.topic_prefix, "tidewatch");
    assert!(!m.discovery && m.install_token.is_none() && m.login.is_none());
    assert!(n[0].email.is_none());
}

#[test]
fn mqtts_defaults_to_port_8883_and_takes_a_login_and_install_token() {
    let (_dir, password) = secret_file("hunter2\n");
    let (_dir2, token) = secret_file("press-me\n");
    let n = notify(&format!(
        "[[notify]]\nkind = \"mqtt\"\nurl = \"mqtts://broker.example\"\nusername = \"tidewatch\"\n\
         password_file = {password:?}\ntopic_prefix = \"home/servers\"\n\
         homeassistant_discovery = true\ninstall_token_file = {token:?}\n"
    ));
    let m = n[0].mqtt.as_ref().expect("mqtt settings");
    assert_eq!((m.port, m.tls, m.discovery), (8883, true, true));
    assert_eq!(m.topic_prefix, "home/servers");
    let login = m.login.as_ref().expect("login");
    assert_eq!(login.username, "tidewatch");
    assert_eq!(login.password.expose(), "hunter2");
    assert_eq!(
        m.install_token.as_ref().map(Secret::expose),
        Some("press-me")
    );
    assert!(!format!("{:?}", n[0]).contains("hunter2"));
    assert!(!format!("{:?}", n[0]).contains("press-me"));
}

#[test]
fn mqtt_refuses_other_schemes_and_credentials_in_the_url() {
    let e = err("[[notify]]\nkind = \"mqtt\"\nurl = \"http://broker.lan\"\n");
    assert!(
        e.contains("agent.toml:3:7") && e.contains("mqtt://host[:port]"),
        "{e}"
    );
    let e = err("[[notify]]\nkind = \"mqtt\"\nurl = \"mqtt://u:p@broker.lan\"\n");
    assert!(
        e.contains("username and password_file") && !e.contains("u:p"),
        "{e}"
    );
    let e = err("[[notify]]\nkind = \"mqtt\"\nurl = \"mqtt://broker.lan/topic\"\n");
    assert!(e.contains("topic_prefix"), "{e}");
}

#[test]
fn mqtt_sends_secrets_in_the_clear_only_to_loopback() {
    let (_dir, token) = secret_file("press-me");
    let e = err(&format!(
        "[[notify]]\nkind = \"mqtt\"\nurl = \"mqtt://broker.lan\"\ninstall_token_file = {token:?}\n"
    ));
    assert!(e.contains("use mqtts://"), "{e}");
    let n = notify(&format!(
        "[[notify]]\nkind = \"mqtt\"\nurl = \"mqtt://127.0.0.1:1884\"\ninstall_token_file = {token:?}\n"
    ));
    assert_eq!(n[0].mqtt.as_ref().map(|m| m.port), Some(1884));
}

#[test]
fn a_topic_prefix_with_wildcards_or_empty_levels_is_refused() {
    for (prefix, why) in [
        ("a/+/b", "'+'"),
        ("a/#", "'#'"),
        ("/a", "empty"),
        ("a//b", "empty"),
        ("a/", "empty"),
        ("", "1 to 128 bytes"),
        ("$SYS", "broker's own"),
    ] {
        let e = err(&format!(
            "[[notify]]\nkind = \"mqtt\"\nurl = \"mqtt://broker.lan\"\ntopic_prefix = {prefix:?}\n"
        ));
        assert!(
            e.contains("agent.toml:4:16") && e.contains(why),
            "{prefix}: {e}"
        );
    }
}

#[test]
fn mqtt_only_keys_are_refused_elsewhere_and_events_on_mqtt() {
    let e = err(
        "[[notify]]\nkind = \"webhook\"\nurl = \"https://hooks.example\"\nhomeassistant_discovery = true\n",
    );
    assert!(
        e.contains("`homeassistant_discovery` is only for kind = \"mqtt\""),
        "{e}"
    );
    let e =
        err("[[notify]]\nkind = \"mqtt\"\nurl = \"mqtt://broker.lan\"\nevents = [\"failed\"]\n");
    assert!(
        e.contains("`events`") && e.contains("kind = \"mqtt\""),
        "{e}"
    );
    let e = err("[[notify]]\nkind = \"mqtt\"\nurl = \"mqtt://broker.lan\"\nusername = \"u\"\n");
    assert!(e.contains("username needs password_file"), "{e}");
}
