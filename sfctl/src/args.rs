//! Argument helpers the command groups share: clap value parsers for the protocol's
//! enums and for numeric ids.

use std::ffi::OsStr;
use std::marker::PhantomData;

use std::path::PathBuf;

use clap::Args;
use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::error::{CliError, CliResult};

/// The protocol's `wire_enum!` types, so clap can list and parse them.
pub trait WireEnum: Copy + Send + Sync + 'static {
    fn all() -> &'static [Self];
    fn name(self) -> &'static str;
}

macro_rules! impl_wire {
    ($($t:ty),+) => {$(
        impl WireEnum for $t {
            fn all() -> &'static [Self] { <$t>::ALL }
            fn name(self) -> &'static str { self.as_str() }
        }
    )+};
}

impl_wire!(
    sf_proto::Role,
    sf_proto::ApprovalStatus,
    sf_proto::Mode,
    sf_proto::Focus,
    sf_proto::Adapter,
    sf_proto::Effort,
    sf_proto::Capability,
    sf_proto::TaskStatus,
    sf_proto::PlanStatus,
    sf_proto::TaskType,
    sf_proto::DepKind,
    sf_proto::JobRole,
    sf_proto::SeatKind,
    sf_proto::MessageType
);

/// Parses a numeric id given as `12` or `#12` (dependencies, merge requests); `what` names
/// the kind of id in the error.
pub fn parse_number_id(s: &str, what: &str) -> Result<i64, String> {
    s.trim()
        .strip_prefix('#')
        .unwrap_or(s.trim())
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{s}` is not a {what} id (expected a number like 12 or #12)"))
}

/// A clap value parser for a wire enum: lists the wire spellings in `--help` and errors,
/// and accepts them loosely (case, `-` for `_`) like the enums' own `FromStr`.
#[derive(Clone)]
pub struct Wire<T>(PhantomData<T>);

pub fn wire<T: WireEnum>() -> Wire<T> {
    Wire(PhantomData)
}

impl<T: WireEnum> TypedValueParser for Wire<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        T::all()
            .iter()
            .copied()
            .find(|v| v.name().replace('_', "-") == wanted)
            .ok_or_else(|| {
                let mut err = clap::Error::new(ErrorKind::InvalidValue).with_cmd(cmd);
                if let Some(arg) = arg {
                    err.insert(
                        ContextKind::InvalidArg,
                        ContextValue::String(arg.to_string()),
                    );
                }
                err.insert(
                    ContextKind::InvalidValue,
                    ContextValue::String(text.into_owned()),
                );
                err.insert(
                    ContextKind::ValidValue,
                    ContextValue::Strings(T::all().iter().map(|v| v.name().to_owned()).collect()),
                );
                err
            })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            T::all().iter().map(|v| PossibleValue::new(v.name())),
        ))
    }
}

/// Checks the shape of a task or plan id before it goes to the daemon.
pub fn check_id(s: &str) -> CliResult<String> {
    sf_proto::normalize_prefix(s).map_err(|e| CliError::user(e.to_string()))
}

/// Flags accepted by every command.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Workspace root (default: walk up from the current directory to the first `.sf/`)
    #[arg(long, global = true, env = "SF_WORKSPACE", value_name = "PATH")]
    pub workspace: Option<PathBuf>,
    /// Daemon socket (default: computed from the workspace)
    #[arg(long, global = true, env = "SF_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print more about what sfctl does, on stderr (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Tables: show every cell whole, however wide (by default they fit the terminal, or
    /// $COLUMNS, cutting long cells with …)
    #[arg(long, global = true)]
    pub wide: bool,
}
