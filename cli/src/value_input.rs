//! Reading a secret value from what the user gave: `key=value` arguments,
//! `key=-` hidden prompts, `--from-file key=path`, `--from-env-file path`,
//! or one prompted value stored under `value` when nothing was given.
//!
//! Every byte of a value goes straight into a zeroizing buffer and ends in
//! a [`SecretValue`]. No error of this module quotes a value: errors name
//! the key, the argument's position or the file and line instead.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use sealplane_proto::sealed::{SealError, SecretValue, is_valid_key_name};
use zeroize::Zeroizing;

/// Default limit on the sum of a secret's value lengths (SPEC §3).
pub use sealplane_proto::limits::DEFAULT_MAX_SECRET_BYTES;

/// The key a lone prompted value is stored under.
pub const DEFAULT_KEY: &str = "value";

/// Why the value could not be read; never carries value bytes.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A data argument without `=`.
    #[error(
        "data argument {position} is not `key=value`: write `key=value`, or `key=-` to be prompted"
    )]
    NotKeyValue {
        /// 1-based position among the data arguments.
        position: usize,
    },
    /// A `--from-file` argument without `=`.
    #[error(
        "--from-file argument {position} is not `key=path`: write e.g. `--from-file tls.crt=./cert.pem`"
    )]
    FromFileNotKeyPath {
        /// 1-based position among the `--from-file` arguments.
        position: usize,
    },
    /// The key of a `key=value` (or `key=path`) argument is not allowed or
    /// repeats one; the argument is never quoted, as it may hold the value
    /// (a pasted base64 value looks like `key=` up to its padding).
    #[error("{argument}: {problem}")]
    BadKey {
        /// Which argument: `data argument 2`, `--from-file argument 1`.
        argument: String,
        /// What is wrong with its key.
        problem: &'static str,
    },
    /// A key name outside the allowed set, or given twice.
    #[error(transparent)]
    Key(#[from] SealError),
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error (it never contains file content).
        reason: std::io::Error,
    },
    /// A line of an env file is not `KEY=VALUE`.
    #[error("{path}, line {line}: {problem}")]
    EnvFile {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong, without the line's text.
        problem: &'static str,
    },
    /// The value is over the size limit.
    #[error(
        "the secret is {bytes} bytes, over the limit of {limit} bytes ({limit_kib} KiB): store fewer or smaller keys"
    , limit_kib = limit / 1024)]
    TooLarge {
        /// Sum of the value lengths read so far.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A prompt could not be shown or read.
    #[error(
        "cannot prompt for `{key}` ({reason}); without a terminal, read it from a file: --from-file {key}=/dev/stdin"
    )]
    Prompt {
        /// The key being prompted for.
        key: String,
        /// The I/O error.
        reason: std::io::Error,
    },
    /// The prompt was answered with nothing.
    #[error("no value was entered for `{0}`; nothing was sent")]
    EmptyPrompt(String),
    /// `key=-` read an empty standard input.
    #[error(
        "standard input held no value for `{0}` (`{0}=-` reads it when it is not a terminal); nothing was sent"
    )]
    EmptyStdin(String),
    /// Two keys asked to read standard input.
    #[error(
        "`{first}=-` and `{second}=-` both ask to read standard input, which holds one value; read the other with --from-file {second}=PATH"
    )]
    StdinTwice {
        /// The key that read it.
        first: String,
        /// The key that asked again.
        second: String,
    },
}

/// What the user asked to read, before anything is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValueSources {
    /// `key=value` / `key=-` arguments, in order.
    pub pairs: Vec<String>,
    /// `--from-file key=path` arguments.
    pub files: Vec<String>,
    /// `--from-env-file path` arguments.
    pub env_files: Vec<PathBuf>,
}

/// Asks the user for a hidden value; the real one uses the terminal.
pub trait Prompt {
    /// Reads the value for `key` with echo off.
    fn hidden(&mut self, key: &str) -> std::io::Result<Zeroizing<String>>;

    /// Standard input, when it is not a terminal (a pipe, a file): read
    /// whole, at most `limit` + 1 bytes; `None` when it is a terminal.
    fn piped(&mut self, limit: usize) -> Option<std::io::Result<Zeroizing<Vec<u8>>>>;
}

/// The terminal prompt (`rpassword`: reads `/dev/tty` with echo off), and
/// the process's standard input.
pub struct TerminalPrompt;

impl Prompt for TerminalPrompt {
    fn hidden(&mut self, key: &str) -> std::io::Result<Zeroizing<String>> {
        rpassword::prompt_password(format!("{key} (input hidden): ")).map(Zeroizing::new)
    }

    fn piped(&mut self, limit: usize) -> Option<std::io::Result<Zeroizing<Vec<u8>>>> {
        use std::io::IsTerminal as _;
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            return None;
        }
        // Reserved up front so the buffer never reallocates and leaves an
        // unzeroized copy behind.
        let mut buf = Zeroizing::new(Vec::with_capacity(limit + 1));
        Some(
            stdin
                .lock()
                .take(limit as u64 + 1)
                .read_to_end(&mut buf)
                .map(|_| buf),
        )
    }
}

/// Builds the secret value from `sources`, refusing invalid or repeated
/// keys and values over `max_bytes` in total.
pub fn read_value(
    sources: &ValueSources,
    prompt: &mut dyn Prompt,
    max_bytes: usize,
) -> Result<SecretValue, InputError> {
    let mut value = SecretValue::new();
    // The key that read standard input, if one did: it can be read once.
    let mut stdin_key: Option<&str> = None;
    let add = |value: &mut SecretValue, key: &str, bytes: Zeroizing<Vec<u8>>| {
        let total = value.total_bytes() + bytes.len();
        value.insert(key, bytes)?;
        check_size(total, max_bytes)
    };
    for (i, pair) in sources.pairs.iter().enumerate() {
        let (key, text) = pair
            .split_once('=')
            .ok_or(InputError::NotKeyValue { position: i + 1 })?;
        // The key is checked before prompting, so a typo is not found
        // only after the user typed a password.
        check_key(&value, key, || format!("data argument {}", i + 1))?;
        let bytes = if text == "-" {
            match prompt.piped(max_bytes) {
                None => prompted(prompt, key)?,
                Some(read) => {
                    if let Some(first) = stdin_key {
                        return Err(InputError::StdinTwice {
                            first: first.to_owned(),
                            second: key.to_owned(),
                        });
                    }
                    stdin_key = Some(key);
                    from_stdin(key, read, max_bytes)?
                }
            }
        } else {
            Zeroizing::new(text.as_bytes().to_vec())
        };
        add(&mut value, key, bytes)?;
    }
    for (i, spec) in sources.files.iter().enumerate() {
        let (key, path) = spec
            .split_once('=')
            .ok_or(InputError::FromFileNotKeyPath { position: i + 1 })?;
        check_key(&value, key, || format!("--from-file argument {}", i + 1))?;
        let bytes = read_file(Path::new(path), max_bytes)?;
        add(&mut value, key, bytes)?;
    }
    for path in &sources.env_files {
        let text = read_file(path, max_bytes.saturating_mul(2).saturating_add(64 * 1024))?;
        for (key, bytes) in parse_env_file(&text, path)? {
            add(&mut value, &key, bytes)?;
        }
    }
    if value.is_empty() {
        let bytes = prompted(prompt, DEFAULT_KEY)?;
        add(&mut value, DEFAULT_KEY, bytes)?;
    }
    Ok(value)
}

/// Checks an argument's key; errors name the argument, never its text.
fn check_key(
    value: &SecretValue,
    key: &str,
    argument: impl FnOnce() -> String,
) -> Result<(), InputError> {
    if !is_valid_key_name(key) {
        return Err(InputError::BadKey {
            argument: argument(),
            problem: "its key (the text before the first `=`) is not allowed: use 1 to 253 letters, digits, `.`, `_` or `-` (like a Kubernetes Secret key)",
        });
    }
    if value.get(key).is_some() {
        return Err(InputError::BadKey {
            argument: argument(),
            problem: "its key is given more than once: give each key once",
        });
    }
    Ok(())
}

fn check_size(bytes: usize, limit: usize) -> Result<(), InputError> {
    if bytes > limit {
        return Err(InputError::TooLarge { bytes, limit });
    }
    Ok(())
}

fn prompted(prompt: &mut dyn Prompt, key: &str) -> Result<Zeroizing<Vec<u8>>, InputError> {
    let mut text = prompt.hidden(key).map_err(|reason| InputError::Prompt {
        key: key.to_owned(),
        reason,
    })?;
    if text.is_empty() {
        return Err(InputError::EmptyPrompt(key.to_owned()));
    }
    // Moved, not copied: the String's buffer becomes the Vec's.
    Ok(Zeroizing::new(std::mem::take(&mut *text).into_bytes()))
}

/// The value piped in for `key=-`: standard input whole, less one
/// trailing newline (`\n` or `\r\n`, as `echo` and `$(...)` leave it).
fn from_stdin(
    key: &str,
    read: std::io::Result<Zeroizing<Vec<u8>>>,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, InputError> {
    let mut bytes = read.map_err(|reason| InputError::Read {
        path: PathBuf::from("standard input"),
        reason,
    })?;
    check_size(bytes.len(), limit)?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(InputError::EmptyStdin(key.to_owned()));
    }
    Ok(bytes)
}

/// Reads a whole file into a zeroizing buffer, refusing one over `limit`
/// before reading it.
fn read_file(path: &Path, limit: usize) -> Result<Zeroizing<Vec<u8>>, InputError> {
    let err = |reason| InputError::Read {
        path: path.to_owned(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    if meta.is_file() {
        check_size(len, limit)?;
    }
    // Sized up front so the buffer never reallocates and leaves an
    // unzeroized copy behind; pipes (no size) read at most limit + 1 bytes.
    let mut buf = Zeroizing::new(Vec::with_capacity(len.min(limit) + 1));
    (&mut file)
        .take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(err)?;
    check_size(buf.len(), limit)?;
    Ok(buf)
}

/// One `KEY=VALUE` of an env file, the value in a zeroizing buffer.
pub type EnvEntry = (String, Zeroizing<Vec<u8>>);

/// Parses an env file: `KEY=VALUE` lines, blank lines and `#` comments,
/// an optional `export ` prefix, values unquoted (trimmed, ` #` starts a
/// comment), in single quotes (literal) or double quotes (`\n`, `\t`,
/// `\r`, `\"`, `\\` escapes).
pub fn parse_env_file(text: &[u8], path: &Path) -> Result<Vec<EnvEntry>, InputError> {
    let mut out = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let err = |problem| InputError::EnvFile {
            path: path.to_owned(),
            line: i + 1,
            problem,
        };
        let line = trim(raw.strip_suffix(b"\r").unwrap_or(raw));
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let line = match line.strip_prefix(b"export") {
            Some(rest) if rest.first().is_some_and(|b| b.is_ascii_whitespace()) => trim(rest),
            _ => line,
        };
        let eq = line
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| err("not `KEY=VALUE` (no `=`)"))?;
        let key = std::str::from_utf8(trim(&line[..eq]))
            .map_err(|_| err("the key is not UTF-8"))?
            .to_owned();
        if !is_valid_key_name(&key) {
            // Not quoted: a malformed line may hold the value there.
            return Err(err(
                "the key is not allowed: use 1 to 253 letters, digits, `.`, `_` or `-` (like a Kubernetes Secret key)",
            ));
        }
        let value = env_value(trim(&line[eq + 1..])).map_err(err)?;
        out.push((key, value));
    }
    Ok(out)
}

fn env_value(text: &[u8]) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len()));
    match text.first() {
        Some(b'\'') => {
            let end = text[1..]
                .iter()
                .position(|&b| b == b'\'')
                .ok_or("a single-quoted value has no closing quote")?;
            after_quote(&text[end + 2..])?;
            out.extend_from_slice(&text[1..end + 1]);
        }
        Some(b'"') => {
            let mut i = 1;
            loop {
                match text.get(i) {
                    None => return Err("a double-quoted value has no closing quote"),
                    Some(b'"') => break,
                    Some(b'\\') => {
                        out.push(match text.get(i + 1) {
                            Some(b'n') => b'\n',
                            Some(b't') => b'\t',
                            Some(b'r') => b'\r',
                            Some(b'"') => b'"',
                            Some(b'\\') => b'\\',
                            _ => return Err("unknown escape in a double-quoted value"),
                        });
                        i += 2;
                    }
                    Some(&b) => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
            after_quote(&text[i + 1..])?;
        }
        _ => {
            // ` #` starts a comment in an unquoted value; `#` alone does not
            // (`pa#ss` is a value).
            let end = text
                .windows(2)
                .position(|w| w[0].is_ascii_whitespace() && w[1] == b'#')
                .unwrap_or(text.len());
            out.extend_from_slice(trim(&text[..end]));
        }
    }
    Ok(out)
}

/// After a closing quote only whitespace or a comment may follow.
fn after_quote(rest: &[u8]) -> Result<(), &'static str> {
    let rest = trim(rest);
    if rest.is_empty() || rest.starts_with(b"#") {
        Ok(())
    } else {
        Err("text after the closing quote")
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers prompts from a list, recording which keys were asked.
    #[derive(Default)]
    struct Scripted {
        answers: Vec<&'static str>,
        asked: Vec<String>,
        /// What standard input holds when it is not a terminal.
        stdin: Option<&'static [u8]>,
    }

    impl Prompt for Scripted {
        fn hidden(&mut self, key: &str) -> std::io::Result<Zeroizing<String>> {
            self.asked.push(key.to_owned());
            if self.answers.is_empty() {
                return Err(std::io::Error::other("no terminal"));
            }
            Ok(Zeroizing::new(self.answers.remove(0).to_owned()))
        }

        fn piped(&mut self, limit: usize) -> Option<std::io::Result<Zeroizing<Vec<u8>>>> {
            self.stdin
                .map(|bytes| Ok(Zeroizing::new(bytes[..bytes.len().min(limit + 1)].to_vec())))
        }
    }

    #[test]
    fn a_dash_reads_piped_standard_input_once_less_one_trailing_newline() {
        // Given a value piped in, when `password=-` is read, then it is
        // the input without its last newline, and nothing is prompted
        for (piped, want) in [
            (&b"s3cret\n"[..], &b"s3cret"[..]),
            (b"s3cret\r\n", b"s3cret"),
            (b"two\nlines\n\n", b"two\nlines\n"),
            (b"exact", b"exact"),
        ] {
            let mut p = Scripted {
                stdin: Some(piped),
                ..Default::default()
            };
            let v = read_value(&pairs(&["user=app", "password=-"]), &mut p, 1024).unwrap();
            assert_eq!(v.get("password"), Some(want));
            assert!(p.asked.is_empty());
        }
        // Standard input holds one value: a second `key=-` is refused
        let mut p = Scripted {
            stdin: Some(b"x"),
            ..Default::default()
        };
        let e = read_value(&pairs(&["a=-", "b=-"]), &mut p, 1024).unwrap_err();
        assert!(e.to_string().contains("--from-file b=PATH"), "{e}");
        // An empty one is refused, naming the key; an oversized one too
        let mut p = Scripted {
            stdin: Some(b"\n"),
            ..Default::default()
        };
        let e = read_value(&pairs(&["password=-"]), &mut p, 1024).unwrap_err();
        assert!(
            matches!(e, InputError::EmptyStdin(ref k) if k == "password"),
            "{e:?}"
        );
        let mut p = Scripted {
            stdin: Some(&[b'a'; 40]),
            ..Default::default()
        };
        let e = read_value(&pairs(&["password=-"]), &mut p, 32).unwrap_err();
        assert!(matches!(e, InputError::TooLarge { .. }), "{e:?}");
        assert!(!e.to_string().contains("aaaa"), "no value in the error");
    }

    fn pairs(p: &[&str]) -> ValueSources {
        ValueSources {
            pairs: p.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn read(sources: &ValueSources) -> Result<SecretValue, InputError> {
        read_value(sources, &mut Scripted::default(), DEFAULT_MAX_SECRET_BYTES)
    }

    #[test]
    fn key_value_pairs_split_at_the_first_equals_sign() {
        let v = read(&pairs(&[
            "user=app",
            "dsn=postgres://h/db?sslmode=require",
            "e=",
        ]))
        .unwrap();
        assert_eq!(v.get("user"), Some(&b"app"[..]));
        assert_eq!(v.get("dsn"), Some(&b"postgres://h/db?sslmode=require"[..]));
        assert_eq!(v.get("e"), Some(&b""[..]));
    }

    #[test]
    fn a_dash_prompts_and_nothing_at_all_prompts_for_value() {
        let mut p = Scripted {
            answers: vec!["s3cret"],
            ..Default::default()
        };
        let v = read_value(&pairs(&["user=app", "password=-"]), &mut p, 1024).unwrap();
        assert_eq!(v.get("password"), Some(&b"s3cret"[..]));
        assert_eq!(p.asked, ["password"]);

        let mut p = Scripted {
            answers: vec!["only"],
            ..Default::default()
        };
        let v = read_value(&ValueSources::default(), &mut p, 1024).unwrap();
        assert_eq!(v.keys().collect::<Vec<_>>(), [DEFAULT_KEY]);
        assert_eq!(v.get(DEFAULT_KEY), Some(&b"only"[..]));
    }

    #[test]
    fn prompt_failures_and_empty_answers_are_clear() {
        let e = read(&pairs(&["password=-"])).unwrap_err();
        assert!(
            e.to_string().contains("--from-file password=/dev/stdin"),
            "{e}"
        );
        let mut p = Scripted {
            answers: vec![""],
            ..Default::default()
        };
        let e = read_value(&pairs(&["password=-"]), &mut p, 1024).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no value was entered for `password`; nothing was sent"
        );
    }

    #[test]
    fn an_invalid_key_is_refused_before_prompting() {
        let mut p = Scripted {
            answers: vec!["x"],
            ..Default::default()
        };
        let e = read_value(&pairs(&["bad key=-"]), &mut p, 1024).unwrap_err();
        assert!(matches!(e, InputError::BadKey { .. }), "{e:?}");
        assert!(p.asked.is_empty());
        for bad in ["=x", "a/b=x", "é=x"] {
            assert!(
                matches!(read(&pairs(&[bad])), Err(InputError::BadKey { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_argument_without_equals_is_refused_without_echoing_it() {
        let e = read(&pairs(&["user=app", "hunter2"])).unwrap_err();
        assert!(matches!(e, InputError::NotKeyValue { position: 2 }));
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn no_error_quotes_the_text_of_a_data_or_env_argument() {
        // A pasted base64 value: everything before its padding looks like a key.
        let pasted = "aHVudGVy/MjE+c2VjcmV0=";
        let secret = "aHVudGVy";
        let e = read(&pairs(&["user=app", pasted])).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains(secret), "{text}");
        assert!(text.contains("data argument 2"), "{text}");
        let e = read(&pairs(&["aHVudGVyMjE=", "aHVudGVyMjE=x"])).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains(secret), "{text}");
        assert!(text.contains("data argument 2"), "{text}");
        let e = read(&ValueSources {
            files: vec!["aHVudGVy-no-equals".into()],
            ..Default::default()
        })
        .unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains(secret), "{text}");
        assert!(text.contains("--from-file argument 1"), "{text}");
        let e = parse_env_file(b"OK=1\naHVudGVy+x=y\n", Path::new("prod.env")).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains(secret), "{text}");
        assert!(text.starts_with("prod.env, line 2: "), "{text}");
    }

    #[test]
    fn duplicates_are_refused_across_sources() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join(".env");
        std::fs::write(&env, "user=b\n").unwrap();
        let e = read(&pairs(&["user=a", "user=b"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "data argument 2: its key is given more than once: give each key once"
        );
        let mut s = pairs(&["user=a"]);
        s.env_files.push(env);
        assert!(matches!(
            read(&s),
            Err(InputError::Key(SealError::DuplicateKey(_)))
        ));
        let mut s = pairs(&["user=a"]);
        s.files
            .push(format!("user={}", dir.path().join(".env").display()));
        assert!(matches!(read(&s), Err(InputError::BadKey { .. })));
    }

    #[test]
    fn from_file_reads_bytes_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let bytes: Vec<u8> = (0u8..=255).chain(*b"\n=x\n").collect();
        std::fs::write(&cert, &bytes).unwrap();
        let s = ValueSources {
            files: vec![format!("tls.crt={}", cert.display())],
            ..Default::default()
        };
        let v = read(&s).unwrap();
        assert_eq!(v.get("tls.crt"), Some(&bytes[..]));

        let s = ValueSources {
            files: vec!["tls.crt".into()],
            ..Default::default()
        };
        assert!(
            read(&s)
                .unwrap_err()
                .to_string()
                .contains("is not `key=path`")
        );
        let s = ValueSources {
            files: vec![format!("k={}", dir.path().join("missing").display())],
            ..Default::default()
        };
        let e = read(&s).unwrap_err();
        assert!(e.to_string().starts_with("cannot read ") && e.to_string().contains("missing"));
    }

    #[test]
    fn env_files_handle_comments_quotes_and_export() {
        let text = b"# a comment\n\
            \n\
            export DB_USER=app\n\
            DB_PASSWORD = 'pa ss#word \\n'  # trailing comment\n\
            DSN=\"postgres://h/db?a=b\\n\\\"q\\\"\"\n\
            PLAIN=pa#ss  # comment\n\
            EMPTY=\r\n\
            exporter=yes\n";
        let parsed = parse_env_file(text, Path::new(".env")).unwrap();
        let got: Vec<(&str, &[u8])> = parsed.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
        assert_eq!(
            got,
            [
                ("DB_USER", &b"app"[..]),
                ("DB_PASSWORD", b"pa ss#word \\n"),
                ("DSN", b"postgres://h/db?a=b\n\"q\""),
                ("PLAIN", b"pa#ss"),
                ("EMPTY", b""),
                ("exporter", b"yes"),
            ]
        );
    }

    #[test]
    fn env_file_errors_name_the_line_but_not_the_value() {
        let cases: [(&[u8], usize, &str); 5] = [
            (b"A=1\nhunter2\n", 2, "no `=`"),
            (b"A='hunter2\n", 1, "no closing quote"),
            (b"A=\"hunter2\n", 1, "no closing quote"),
            (b"\n\nA=\"hunter2\" x\n", 3, "after the closing quote"),
            (b"A=\"hunter2\\q\"\n", 1, "unknown escape"),
        ];
        for (text, line, problem) in cases {
            let e = parse_env_file(text, Path::new("prod.env")).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("prod.env, line {line}: ")),
                "{msg}"
            );
            assert!(msg.contains(problem), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
        let e = parse_env_file(b"BAD KEY=1\n", Path::new("x")).unwrap_err();
        assert!(matches!(e, InputError::EnvFile { line: 1, .. }), "{e:?}");
    }

    #[test]
    fn the_size_limit_counts_every_source() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 600]).unwrap();
        let mut s = pairs(&["a=0123456789"]);
        s.files.push(format!("big={}", big.display()));
        let e = read_value(&s, &mut Scripted::default(), 605).unwrap_err();
        assert!(
            matches!(
                e,
                InputError::TooLarge {
                    bytes: 610,
                    limit: 605
                }
            ),
            "{e:?}"
        );
        assert!(read_value(&s, &mut Scripted::default(), 610).is_ok());
        // A single file over the limit is refused before it is read.
        let s = ValueSources {
            files: vec![format!("big={}", big.display())],
            ..Default::default()
        };
        let e = read_value(&s, &mut Scripted::default(), 100).unwrap_err();
        assert!(e.to_string().contains("over the limit of 100 bytes"), "{e}");
        let e = read(&pairs(&[&format!(
            "k={}",
            "x".repeat(DEFAULT_MAX_SECRET_BYTES + 1)
        )]))
        .unwrap_err();
        assert!(e.to_string().contains("(256 KiB)"), "{e}");
    }
}
