//! A group's `health.check` → its [`HealthCheck`], checking meaning on
//! the way; each mistake names the group and points at its value.

use std::sync::Arc;

use http::{HeaderValue, Uri};

use super::{
    locate::{Anchor, CompileError, err},
    schema::{CheckSpec, ProbeSpec},
};
use crate::proxy::{HealthCheck, Probe};

/// Compiles group `name`'s active check, if it has one.
pub(super) fn compile_check(
    name: &str,
    spec: Option<&CheckSpec>,
) -> Result<Option<Arc<HealthCheck>>, CompileError> {
    let Some(spec) = spec else {
        return Ok(None);
    };
    let key = |key: &'static str| Anchor::KeyAfter {
        after: Box::new(Anchor::str(name)),
        key,
    };
    for (field, value) in [("interval", spec.interval), ("timeout", spec.timeout)] {
        if value.is_zero() {
            return err(
                key(field),
                format!(
                    "upstream `{name}`: health check {field} is 0 (expected a duration such as \"5s\")"
                ),
            );
        }
    }
    for (field, value) in [("rise", spec.rise), ("fall", spec.fall)] {
        if value == 0 {
            return err(
                key(field),
                format!(
                    "upstream `{name}`: health check {field} is 0 (expected 1 or more probes in a row)"
                ),
            );
        }
    }
    let probe = match &spec.probe {
        ProbeSpec::Tcp => Probe::Tcp,
        ProbeSpec::Http { path, status, host } => {
            let uri = path
                .parse::<Uri>()
                .ok()
                .filter(|u| path.starts_with('/') && u.authority().is_none());
            let Some(uri) = uri else {
                return err(
                    Anchor::str(path),
                    format!(
                        "upstream `{name}`: invalid health check path `{path}` (expected a path such as \"/healthz\")"
                    ),
                );
            };
            let (first, last) = *status;
            if !(100..=599).contains(&first) || !(first..=599).contains(&last) {
                return err(
                    key("status"),
                    format!(
                        "upstream `{name}`: health check status ({first}, {last}) is not a range of statuses (expected (first, last) within 100 to 599, such as (200, 399))"
                    ),
                );
            }
            let host = match host {
                None => None,
                Some(h) => Some(HeaderValue::try_from(h.as_str()).map_err(|_| CompileError {
                    message: format!("upstream `{name}`: invalid health check Host `{h}` (expected visible ASCII)"),
                    anchor: Anchor::str(h),
                })?),
            };
            Probe::Http {
                uri,
                status: first..=last,
                host,
            }
        }
    };
    Ok(Some(Arc::new(HealthCheck {
        probe,
        interval: spec.interval,
        timeout: spec.timeout,
        rise: spec.rise,
        fall: spec.fall,
    })))
}
