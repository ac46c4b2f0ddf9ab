use std::fmt;

/// Where an object came from: the input's name, the document in it and, for `kind: List`, the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: String,
    /// 1-based, counting every document of the stream (empty ones too), as editors show them.
    pub document: usize,
    /// 0-based index in `items` when the object came from a `kind: List`.
    pub item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, document {}", self.source, self.document)?;
        if let Some(item) = self.item {
            write!(f, ", items[{item}]")?;
        }
        Ok(())
    }
}

/// One thing wrong with (or one warning about) one object, located down to the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    /// `Kind "name"`, when the document got far enough to have them.
    pub object: Option<String>,
    /// Dotted field path, e.g. `spec.template.spec.containers[0].image`; empty for the whole object.
    pub path: String,
    pub message: String,
}

impl Problem {
    /// The problem without where it is, as the Kubernetes API words a warning about the object
    /// it was sent (`path: message`; a field the schema does not have as kubectl's `unknown
    /// field "path"`).
    pub fn brief(&self) -> String {
        if self.message == crate::parse::UNKNOWN_FIELD {
            format!("unknown field {:?}", self.path)
        } else if self.path.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.path, self.message)
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(object) = &self.object {
            write!(f, ", {object}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{source_name} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        source_name: String,
        size: usize,
        limit: usize,
    },
    #[error("{source_name}{}: {message}", location(*line, *column))]
    Syntax {
        source_name: String,
        line: Option<u64>,
        column: Option<u64>,
        message: String,
    },
    #[error("{}", summarize(problems))]
    Invalid { problems: Vec<Problem> },
}

fn location(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(", line {l}, column {c}"),
        (Some(l), None) => format!(", line {l}"),
        _ => String::new(),
    }
}

fn summarize(problems: &[Problem]) -> String {
    match problems {
        [] => "invalid manifest".to_owned(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more problems)", rest.len()),
    }
}

impl Error {
    /// Every problem, for callers that list them all (the CLI prints one per line).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Error::Invalid { problems } => problems,
            _ => &[],
        }
    }
}
