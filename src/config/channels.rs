//! The `channels:` section: which transport delivers each kind of action. A kind with no
//! transport configured goes to the `outbox/` folder, so nothing leaves the machine until
//! a transport is written down.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Secret;
use crate::domain::ActionKind;

/// What a channel does with an action whose send was interrupted (a crash after the
/// channel may have accepted it and before the outcome was recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupted {
    /// Send again with the same message id / idempotency key: receivers deduplicate.
    Resend,
    /// Hold it for an operator (formal notices, insurer handovers).
    Hold,
}

/// Transports, validated.
#[derive(Debug, Clone)]
pub struct ChannelsConfig {
    /// Where kinds without a transport write what they would send.
    pub outbox_dir: PathBuf,
    /// Message templates (email, SMS); the shipped ones are used when absent.
    pub templates_dir: PathBuf,
    pub email: Option<EmailConfig>,
    pub sms: Option<SmsConfig>,
    pub call_tasks: CallTasksConfig,
    /// What a send interrupted by a crash becomes, by kind: `resend` (with the same
    /// message id / idempotency key) or `hold` for an operator. Formal notices and
    /// insurer handovers are held unless configured otherwise.
    pub on_interrupted: BTreeMap<ActionKind, OnInterrupted>,
    /// Where generated documents (formal notices, statements) are archived.
    pub documents: DocumentsConfig,
    pub formal_notice: FormalNoticeConfig,
}

/// Where generated documents are archived, with their SHA-256 in the action log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentArchive {
    /// Files under this directory (`YYYY/MM/<file>`), never overwritten.
    Directory(PathBuf),
    /// In the database, with the action.
    Database,
}

#[derive(Debug, Clone)]
pub struct DocumentsConfig {
    pub archive: DocumentArchive,
}

#[derive(Debug, Clone)]
pub struct FormalNoticeConfig {
    /// Email template of the message the PDF is attached to.
    pub email_template: String,
    /// Letter template (`templates/pdf/<name>.<lang>.typ`) when the rule names none.
    pub template: String,
    /// Days given to pay when the rule does not say.
    pub deadline_days: i64,
    pub registered_mail: Option<RegisteredMailConfig>,
}

/// A registered-mail provider reached through a generic HTTP adapter: the PDF (base64)
/// and the addressing metadata as JSON.
#[derive(Debug, Clone)]
pub struct RegisteredMailConfig {
    pub url: String,
    pub headers: BTreeMap<String, Secret>,
    /// JSON pointer to the tracking reference in the response (e.g. `/tracking_number`).
    pub tracking_pointer: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub smtp: SmtpConfig,
    /// `Name <address>` or an address.
    pub from: String,
    /// Used when the customer has no collector with an email address.
    pub reply_to: Option<String>,
    /// A copy of every message, for the archive.
    pub bcc: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// STARTTLS on the submission port (587), required.
    Starttls,
    /// Implicit TLS (SMTPS, 465).
    Tls,
    /// No encryption: a local relay only.
    Plain,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub timeout: Duration,
    /// Connections kept open and reused.
    pub pool_size: u32,
    /// A PEM file of certificates to trust besides the public roots (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate: a test relay only, never in production.
    pub accept_invalid_certs: bool,
}

#[derive(Debug, Clone)]
pub struct SmsConfig {
    pub provider: SmsProvider,
    /// `rules check` warns when a rendering needs more segments than this.
    pub max_segments: u32,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum SmsProvider {
    Twilio {
        account_sid: String,
        auth_token: Secret,
        from: String,
        base_url: String,
    },
    Brevo {
        api_key: Secret,
        sender: String,
        base_url: String,
    },
    /// Any gateway: a URL, a method, headers and a body template.
    Http {
        url: String,
        method: String,
        headers: BTreeMap<String, Secret>,
        /// A template rendered with `to`, `text`, `idempotency_key`, `customer`.
        body: String,
        content_type: String,
        /// JSON pointer to the message id in the response (e.g. `/id`).
        id_pointer: Option<String>,
    },
}

impl SmsProvider {
    pub fn name(&self) -> &'static str {
        match self {
            SmsProvider::Twilio { .. } => "twilio",
            SmsProvider::Brevo { .. } => "brevo",
            SmsProvider::Http { .. } => "http",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct CallTasksConfig {
    /// Assignee when neither the rule nor the customer names one.
    pub default_assignee: Option<String>,
    /// Days to do the call when the rule does not say.
    pub due_in_days: i64,
    /// New tasks are posted to this webhook (a CRM, a helpdesk), signed.
    pub notify: Option<WebhookTarget>,
}

/// A signed webhook endpoint (Standard Webhooks).
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    /// `whsec_...` secrets; every one signs, so a receiver can rotate.
    pub secrets: Vec<Secret>,
    pub timeout: Duration,
}

// ---- raw shapes -------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannels {
    pub outbox_dir: Option<String>,
    pub templates_dir: Option<String>,
    pub email: Option<RawEmail>,
    pub sms: Option<RawSms>,
    pub call_tasks: Option<RawCallTasks>,
    #[serde(default)]
    pub on_interrupted: BTreeMap<String, String>,
    pub documents: Option<RawDocuments>,
    pub formal_notice: Option<RawFormalNotice>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocuments {
    pub archive: Option<String>,
    pub dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFormalNotice {
    pub email_template: Option<String>,
    pub template: Option<String>,
    pub deadline_days: Option<i64>,
    pub registered_mail: Option<RawRegisteredMail>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegisteredMail {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    pub tracking_pointer: Option<String>,
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub smtp: RawSmtp,
    pub from: String,
    pub reply_to: Option<String>,
    #[serde(default)]
    pub bcc: OneOrMany,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub host: String,
    pub port: Option<u16>,
    pub security: Option<SmtpSecurity>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub timeout_seconds: Option<u64>,
    pub pool_size: Option<u32>,
    pub ca_file: Option<String>,
    #[serde(default)]
    pub accept_invalid_certs: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSms {
    pub provider: String,
    pub max_segments: Option<u32>,
    pub timeout_seconds: Option<u64>,
    pub twilio: Option<RawTwilio>,
    pub brevo: Option<RawBrevo>,
    pub http: Option<RawHttpSms>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTwilio {
    pub account_sid: String,
    pub auth_token: Secret,
    pub from: String,
    pub base_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBrevo {
    pub api_key: Secret,
    pub sender: String,
    pub base_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpSms {
    pub url: String,
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    pub body: String,
    pub content_type: Option<String>,
    pub id_pointer: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCallTasks {
    pub default_assignee: Option<String>,
    pub due_in_days: Option<i64>,
    pub notify: Option<RawWebhook>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: String,
    #[serde(default)]
    pub secrets: Vec<Secret>,
    pub secret: Option<Secret>,
    pub timeout_seconds: Option<u64>,
}

/// Validates the raw section; `err(path, message)` records each problem.
pub fn build(raw: RawChannels, err: &mut dyn FnMut(&str, String)) -> ChannelsConfig {
    let email = raw.email.map(|e| {
        let security = e.smtp.security.unwrap_or(SmtpSecurity::Starttls);
        let port = e.smtp.port.unwrap_or(match security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Plain => 25,
        });
        if e.smtp.host.trim().is_empty() {
            err("channels.email.smtp.host", "must not be empty".into());
        }
        if e.smtp.password.is_some() && e.smtp.username.is_none() {
            err(
                "channels.email.smtp.username",
                "a password is set but no username".into(),
            );
        }
        if e.smtp.password.is_some() && security == SmtpSecurity::Plain {
            err(
                "channels.email.smtp.security",
                "credentials over an unencrypted connection: use starttls or tls".into(),
            );
        }
        for (path, addr) in std::iter::once(("channels.email.from", &e.from))
            .chain(e.reply_to.iter().map(|r| ("channels.email.reply_to", r)))
        {
            if addr.parse::<lettre::message::Mailbox>().is_err() {
                err(
                    path,
                    format!("'{addr}' is not an email address (or 'Name <address>')"),
                );
            }
        }
        let bcc = e.bcc.into_vec();
        for b in &bcc {
            if b.parse::<lettre::message::Mailbox>().is_err() {
                err(
                    "channels.email.bcc",
                    format!("'{b}' is not an email address"),
                );
            }
        }
        EmailConfig {
            smtp: SmtpConfig {
                host: e.smtp.host,
                port,
                security,
                username: e.smtp.username,
                password: e.smtp.password,
                timeout: Duration::from_secs(e.smtp.timeout_seconds.unwrap_or(30).max(1)),
                pool_size: e.smtp.pool_size.unwrap_or(4).max(1),
                ca_file: e.smtp.ca_file.map(PathBuf::from),
                accept_invalid_certs: e.smtp.accept_invalid_certs,
            },
            from: e.from,
            reply_to: e.reply_to,
            bcc,
        }
    });

    let sms = raw.sms.and_then(|s| {
        let provider = match s.provider.as_str() {
            "twilio" => match s.twilio {
                Some(t) => Some(SmsProvider::Twilio {
                    account_sid: t.account_sid,
                    auth_token: t.auth_token,
                    from: t.from,
                    base_url: trim_url(t.base_url.as_deref().unwrap_or("https://api.twilio.com")),
                }),
                None => {
                    err("channels.sms.twilio", "provider is twilio but the twilio section (account_sid, auth_token, from) is missing".into());
                    None
                }
            },
            "brevo" => match s.brevo {
                Some(b) => Some(SmsProvider::Brevo {
                    api_key: b.api_key,
                    sender: b.sender,
                    base_url: trim_url(b.base_url.as_deref().unwrap_or("https://api.brevo.com")),
                }),
                None => {
                    err(
                        "channels.sms.brevo",
                        "provider is brevo but the brevo section (api_key, sender) is missing"
                            .into(),
                    );
                    None
                }
            },
            "http" => match s.http {
                Some(h) => {
                    let method = h.method.unwrap_or_else(|| "POST".into()).to_ascii_uppercase();
                    if !["POST", "PUT", "PATCH", "GET"].contains(&method.as_str()) {
                        err(
                            "channels.sms.http.method",
                            format!("unsupported method '{method}' (POST, PUT, PATCH or GET)"),
                        );
                    }
                    if let Err(e) = minijinja::Environment::new().template_from_str(&h.body) {
                        err("channels.sms.http.body", format!("template error: {e}"));
                    }
                    if let Some(p) = &h.id_pointer {
                        if !p.is_empty() && !p.starts_with('/') {
                            err(
                                "channels.sms.http.id_pointer",
                                format!("'{p}' is not a JSON pointer (e.g. /id or /messages/0/id)"),
                            );
                        }
                    }
                    Some(SmsProvider::Http {
                        url: h.url,
                        method,
                        headers: h.headers,
                        body: h.body,
                        content_type: h.content_type.unwrap_or_else(|| "application/json".into()),
                        id_pointer: h.id_pointer,
                    })
                }
                None => {
                    err(
                        "channels.sms.http",
                        "provider is http but the http section (url, body) is missing".into(),
                    );
                    None
                }
            },
            other => {
                err(
                    "channels.sms.provider",
                    format!("unknown SMS provider '{other}' (expected twilio, brevo or http)"),
                );
                None
            }
        }?;
        Some(SmsConfig {
            provider,
            max_segments: s.max_segments.unwrap_or(2).max(1),
            timeout: Duration::from_secs(s.timeout_seconds.unwrap_or(15).max(1)),
        })
    });

    let call_tasks = raw.call_tasks.map_or_else(
        || CallTasksConfig {
            due_in_days: 2,
            ..Default::default()
        },
        |c| {
            let notify = c
                .notify
                .map(|w| webhook_target(w, "channels.call_tasks.notify", 15, err));
            CallTasksConfig {
                default_assignee: c.default_assignee,
                due_in_days: c.due_in_days.unwrap_or(2).max(0),
                notify,
            }
        },
    );

    let mut on_interrupted: BTreeMap<ActionKind, OnInterrupted> = [
        (ActionKind::FormalNotice, OnInterrupted::Hold),
        (ActionKind::InsurerHandover, OnInterrupted::Hold),
    ]
    .into_iter()
    .collect();
    for (kind, policy) in raw.on_interrupted {
        let path = format!("channels.on_interrupted.{kind}");
        let policy = match policy.as_str() {
            "resend" => OnInterrupted::Resend,
            "hold" => OnInterrupted::Hold,
            other => {
                err(&path, format!("'{other}': expected resend or hold"));
                continue;
            }
        };
        match kind.parse::<ActionKind>() {
            Ok(k) => {
                on_interrupted.insert(k, policy);
            }
            Err(e) => err(&path, e),
        }
    }

    let documents = raw.documents.unwrap_or_default();
    let dir = PathBuf::from(documents.dir.unwrap_or_else(|| "archive".into()));
    let archive = match documents.archive.as_deref().unwrap_or("directory") {
        "directory" => DocumentArchive::Directory(dir),
        "database" => DocumentArchive::Database,
        other => {
            err(
                "channels.documents.archive",
                format!("'{other}': expected directory or database"),
            );
            DocumentArchive::Directory(dir)
        }
    };
    let fnotice = raw.formal_notice.unwrap_or_default();
    let deadline_days = fnotice.deadline_days.unwrap_or(8);
    if !(1..=90).contains(&deadline_days) {
        err(
            "channels.formal_notice.deadline_days",
            "must be between 1 and 90 days".into(),
        );
    }
    let registered_mail = fnotice.registered_mail.map(|r| {
        let tracking_pointer = r.tracking_pointer.unwrap_or_else(|| "/id".into());
        pointer(
            &tracking_pointer,
            "channels.formal_notice.registered_mail.tracking_pointer",
            err,
        );
        if !(r.url.starts_with("http://") || r.url.starts_with("https://")) {
            err(
                "channels.formal_notice.registered_mail.url",
                format!(
                    "'{}' is not an http(s) URL",
                    crate::config::redact_url(&r.url)
                ),
            );
        }
        RegisteredMailConfig {
            url: r.url,
            headers: r.headers,
            tracking_pointer,
            timeout: Duration::from_secs(r.timeout_seconds.unwrap_or(60).max(1)),
        }
    });

    ChannelsConfig {
        documents: DocumentsConfig { archive },
        formal_notice: FormalNoticeConfig {
            email_template: fnotice
                .email_template
                .unwrap_or_else(|| "formal_notice".into()),
            template: fnotice.template.unwrap_or_else(|| "formal_notice".into()),
            deadline_days: deadline_days.clamp(1, 90),
            registered_mail,
        },
        on_interrupted,
        outbox_dir: PathBuf::from(raw.outbox_dir.unwrap_or_else(|| "outbox".into())),
        templates_dir: PathBuf::from(raw.templates_dir.unwrap_or_else(|| "templates".into())),
        email,
        sms,
        call_tasks,
    }
}

/// A webhook endpoint: at least one valid `whsec_` secret, an http(s) URL.
pub fn webhook_target(
    w: RawWebhook,
    path: &str,
    default_timeout: u64,
    err: &mut dyn FnMut(&str, String),
) -> WebhookTarget {
    let mut keyed: Vec<(String, &Secret)> = w
        .secrets
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("{path}.secrets[{i}]"), s))
        .collect();
    keyed.extend(w.secret.iter().map(|s| (format!("{path}.secret"), s)));
    if keyed.is_empty() {
        err(
            &format!("{path}.secrets"),
            "at least one signing secret (whsec_...) is needed".into(),
        );
    }
    for (key, s) in &keyed {
        if let Err(why) = check_webhook_secret(s.expose()) {
            err(key, why);
        }
    }
    let mut secrets = w.secrets;
    secrets.extend(w.secret);
    if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
        err(
            &format!("{path}.url"),
            format!(
                "'{}' is not an http(s) URL",
                crate::config::redact_url(&w.url)
            ),
        );
    }
    WebhookTarget {
        url: w.url,
        secrets,
        timeout: Duration::from_secs(w.timeout_seconds.unwrap_or(default_timeout).max(1)),
    }
}

/// The Standard Webhooks secret format: `whsec_` then the base64 of 24 to 64 bytes. The
/// message says what is wrong without showing the secret.
fn check_webhook_secret(secret: &str) -> Result<(), String> {
    use base64::Engine as _;
    const FORMAT: &str =
        "a signing secret is 'whsec_' followed by the base64 of 24 to 64 random bytes (Standard Webhooks)";
    let Some(b64) = secret.strip_prefix("whsec_") else {
        return Err(format!(
            "not a signing secret: it does not start with 'whsec_'; {FORMAT} (the value is not shown)"
        ));
    };
    let Ok(key) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return Err(format!(
            "not a signing secret: what follows 'whsec_' is not base64; {FORMAT} (the value is not shown)"
        ));
    };
    if !(24..=64).contains(&key.len()) {
        return Err(format!(
            "not a signing secret: its key is {} bytes long; {FORMAT} (the value is not shown)",
            key.len()
        ));
    }
    Ok(())
}

fn pointer(p: &str, path: &str, err: &mut dyn FnMut(&str, String)) {
    if !p.is_empty() && !p.starts_with('/') {
        err(
            path,
            format!("'{p}' is not a JSON pointer (e.g. /id or /data/reference)"),
        );
    }
}

fn trim_url(u: &str) -> String {
    u.trim_end_matches('/').to_string()
}
