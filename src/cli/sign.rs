//! `sign` and `send`: build a correctly signed Lyra form IPN, to test a new
//! setup end to end without the payment platform.
//!
//! The key comes from a configured source (`--source`, or the only
//! `lyra-form` source of the configuration), `--key` or `--key-file`. It is
//! never printed: not in the output, not in an error.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::{emit, load_config, CliError};
use crate::config::{Secret, SourceConfig, SourceKind};
use crate::outbound::{self, ClientOptions, OutboundError, Redirects};
use crate::providers::form::{self, Form};
use crate::providers::lyra::{form_signature, SignAlgo};

/// How long `send` waits for the endpoint's answer.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// Sign with this configured source's key and algorithm (from --config,
    /// or the embedded demo configuration). The default when no key is
    /// given: the configuration's only lyra-form source.
    #[arg(long, conflicts_with_all = ["key", "key_file"])]
    pub source: Option<String>,
    /// The key itself. It shows in the process list: prefer --key-file.
    #[arg(long, conflicts_with = "key_file")]
    pub key: Option<String>,
    /// A file holding the key (surrounding whitespace is ignored).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Signature algorithm [default: the source's, else HMAC-SHA-256].
    #[arg(long, value_parser = parse_algo, value_name = "SHA-1|HMAC-SHA-256")]
    pub algo: Option<SignAlgo>,
    /// Add or replace a vads_* field before signing (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    /// Form body to sign; `-` reads stdin. Omitted: stdin, or only the
    /// --set fields when any are given.
    pub input: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// Where to POST the signed body (e.g. http://127.0.0.1:8080/ipn/lyra).
    pub url: String,
    #[command(flatten)]
    pub sign: SignArgs,
}

fn parse_algo(s: &str) -> Result<SignAlgo, String> {
    match s.to_ascii_uppercase().as_str() {
        "SHA-1" | "SHA1" => Ok(SignAlgo::Sha1),
        "HMAC-SHA-256" | "HMAC-SHA256" | "SHA-256" => Ok(SignAlgo::HmacSha256),
        _ => Err(format!(
            "unknown algorithm {s:?} (expected SHA-1 or HMAC-SHA-256)"
        )),
    }
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    // Only vads_* fields are signed: anything else is most likely a typo.
    if !name.starts_with("vads_") {
        return Err(format!(
            "{name:?}: only vads_* fields can be set (the signature is computed)"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// `ipnsync sign`: prints the signed body. No newline is added when the
/// output goes to a pipe or file, so it can be posted byte for byte.
pub fn sign(config: Option<&Path>, args: &SignArgs) -> Result<(), CliError> {
    let body = signed_body(config, args)?;
    let newline = if std::io::stdout().is_terminal() {
        "\n"
    } else {
        ""
    };
    emit(&format!("{body}{newline}"))
}

/// `ipnsync send URL`: signs, POSTs, prints the status and the answer.
/// Succeeds only for a 2xx answer.
pub fn send(config: Option<&Path>, args: &SendArgs) -> Result<(), CliError> {
    let body = signed_body(config, &args.sign)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Remote(format!("cannot start the HTTP client: {e}")))?;
    let (status, text) = runtime.block_on(post(&args.url, body))?;
    emit(&format!(
        "HTTP {status}\n{text}{}",
        if text.ends_with('\n') { "" } else { "\n" }
    ))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(CliError::Remote(format!(
            "{} answered HTTP {status}",
            args.url
        )))
    }
}

async fn post(url: &str, body: String) -> Result<(reqwest::StatusCode, String), CliError> {
    let unreachable = |e: OutboundError| CliError::Remote(format!("{url}: {e}"));
    // Redirects are followed, as `send` always did: it carries no
    // credential of ours, only the signed body.
    let client = outbound::client(&ClientOptions {
        timeout: SEND_TIMEOUT,
        connect_timeout: None,
        idle_per_host: None,
        redirects: Redirects::Follow,
    });
    let response = client
        .post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| unreachable(OutboundError::transport(e)))?;
    let status = response.status();
    let text = outbound::read_body_capped(response, outbound::MAX_ANSWER_BYTES)
        .await
        .map_err(unreachable)?;
    Ok((status, text))
}

/// Reads the body, applies `--set`, drops any old signature and appends a
/// fresh one as the last field.
fn signed_body(config: Option<&Path>, args: &SignArgs) -> Result<String, CliError> {
    let signer = signer(config, args)?;
    let mut pairs = read_form(args)?;
    pairs.retain(|(name, _)| name != "signature");
    for (name, value) in &args.set {
        match pairs.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1.clone_from(value),
            None => pairs.push((name.clone(), value.clone())),
        }
    }
    if let Some(source) = &signer.source {
        warn_on_mismatch(source, &pairs);
    }
    let unsigned = Form::from_pairs(pairs.iter().cloned());
    let signature = form_signature(&unsigned, signer.key.expose(), signer.algo);
    pairs.push(("signature".to_owned(), signature));
    Ok(Form::from_pairs(pairs).encode())
}

/// The key and algorithm to sign with, and the source they came from.
struct Signer {
    key: Secret,
    algo: SignAlgo,
    source: Option<SourceConfig>,
}

fn signer(config: Option<&Path>, args: &SignArgs) -> Result<Signer, CliError> {
    let explicit_key = match (&args.key, &args.key_file) {
        (Some(key), _) => Some(Secret::new(key.trim())),
        (None, Some(file)) => Some(read_key_file(file)?),
        (None, None) => None,
    };
    if let Some(key) = explicit_key {
        if key.expose().is_empty() {
            return Err(CliError::Usage("the key is empty".to_owned()));
        }
        return Ok(Signer {
            key,
            algo: args.algo.unwrap_or(SignAlgo::HmacSha256),
            source: None,
        });
    }
    let source = config_source(config, args.source.as_deref())?;
    Ok(Signer {
        key: source.key.clone(),
        algo: args.algo.unwrap_or(source.algorithm),
        source: Some(source),
    })
}

fn read_key_file(path: &Path) -> Result<Secret, CliError> {
    // The error names the file, never its content.
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!("cannot read the key file {}: {e}", path.display()))
    })?;
    Ok(Secret::new(text.trim()))
}

/// The named source, or the configuration's only `lyra-form` source.
fn config_source(config: Option<&Path>, name: Option<&str>) -> Result<SourceConfig, CliError> {
    let config = load_config(config)?;
    let forms: Vec<&SourceConfig> = config
        .sources
        .iter()
        .filter(|s| s.kind == SourceKind::LyraForm)
        .collect();
    let source = match name {
        Some(name) => {
            let source = config
                .sources
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| {
                    CliError::Usage(format!("no source named {name:?} in the configuration"))
                })?;
            if source.kind != SourceKind::LyraForm {
                return Err(CliError::Usage(format!(
                    "source {name:?} is {}: only lyra-form notifications can be signed",
                    source.kind.as_str()
                )));
            }
            source
        }
        None => match forms.as_slice() {
            [only] => only,
            [] => {
                return Err(CliError::Usage(
                    "the configuration has no lyra-form source: pass --key or --key-file"
                        .to_owned(),
                ))
            }
            _ => {
                let names: Vec<&str> = forms.iter().map(|s| s.name.as_str()).collect();
                return Err(CliError::Usage(format!(
                    "several lyra-form sources ({}): pass --source",
                    names.join(", ")
                )));
            }
        },
    };
    Ok(source.clone())
}

/// The form to sign, as decoded pairs in their original order.
fn read_form(args: &SignArgs) -> Result<Vec<(String, String)>, CliError> {
    let raw = match args.input.as_deref() {
        Some(path) if path != Path::new("-") => std::fs::read(path)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?,
        None if !args.set.is_empty() => Vec::new(),
        _ => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| CliError::Usage(format!("cannot read stdin: {e}")))?;
            buf
        }
    };
    // Files saved by editors end with a newline that is not part of the body.
    let trimmed = raw.trim_ascii_end();
    let parsed = form::parse(trimmed)
        .map_err(|e| CliError::Usage(format!("the input is not a valid form body: {e}")))?;
    Ok(parsed
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect())
}

/// The daemon would refuse a notification for the other mode or site with
/// 403; say so now rather than let the operator chase a signature problem.
fn warn_on_mismatch(source: &SourceConfig, pairs: &[(String, String)]) {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(mode) = field("vads_ctx_mode") {
        if mode != source.mode.as_str() {
            eprintln!(
                "warning: vads_ctx_mode is {mode:?} but source {:?} expects {}",
                source.name,
                source.mode.as_str()
            );
        }
    }
    if let (Some(expected), Some(site)) = (&source.site_id, field("vads_site_id")) {
        if site != expected {
            eprintln!(
                "warning: vads_site_id is {site:?} but source {:?} expects {expected:?}",
                source.name
            );
        }
    }
}
