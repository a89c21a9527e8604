//! One server's route table (P4.1): matchit for paths, then regexes.
//!
//! Precedence, highest first:
//! 1. an exact path (`/hello`);
//! 2. a path with a `{param}` segment (`/users/{id}`);
//! 3. a catch-all (`/static/{*path}`), which also answers its bare prefix
//!    (`/static/`), like an nginx prefix `location`;
//! 4. regex routes, in file order.
//!
//! Steps 1–3 are matchit's own priority. matchit refuses a `{param}` and a
//! `{*catch_all}` at the same segment (`/u/{id}` with `/u/{*rest}`); the
//! config check reports it with its position. In nginx a regex `location` beats a
//! plain prefix one; here it does not: a regex only sees paths that no path
//! route matched. A path that matches but not for this method falls through
//! to the regexes, and answers 405 with `Allow` if nothing else takes it.

use std::sync::Arc;

use http::{HeaderValue, Method};
use regex::Regex;

use crate::handler::{Handler, Middleware};

/// A module as a route's metrics see it: the series of its calls, once
/// the server's registry exists (modules implement it).
pub trait CountedModule: Send + Sync {
    /// Its series, once set.
    fn metrics(&self) -> Option<&crate::observe::metrics::ModuleMetrics>;
}

/// A compiled route.
pub struct Route {
    /// The pattern or regex as written, for logs.
    pub pattern: Arc<str>,
    /// Methods answered; `None` means any.
    pub methods: Option<Vec<Method>>,
    /// Rate limits, checked before the body is read (its server's first).
    pub limits: Box<[crate::limit::Limit]>,
    /// Middleware, outermost first.
    pub middleware: Arc<[Arc<dyn Middleware>]>,
    /// The handler at the end of the chain.
    pub handler: Arc<dyn Handler>,
    /// What answers, for the admin API: `Return`, `Static`, `Module(x)`…
    pub describe: Arc<str>,
    /// The module that answers, if one does (its calls are counted).
    pub module: Option<Arc<dyn CountedModule>>,
    /// Its metric handles, made on its first request.
    pub metrics: std::sync::OnceLock<Arc<crate::observe::metrics::RouteMetrics>>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("pattern", &self.pattern)
            .field("methods", &self.methods)
            .field("middleware", &self.middleware.len())
            .finish()
    }
}

impl Route {
    fn allows(&self, m: &Method) -> bool {
        self.methods.as_ref().is_none_or(|ms| ms.contains(m))
    }
}

/// The outcome of a lookup.
#[derive(Debug)]
pub enum Match<'r> {
    /// A route takes the request.
    Found {
        /// The route.
        route: &'r Route,
        /// Path parameters or regex captures (`1`…`9`).
        params: Vec<(String, String)>,
    },
    /// Some route has this path, but none for this method.
    WrongMethod {
        /// Every method that would have matched.
        allow: HeaderValue,
    },
    /// Nothing has this path.
    NotFound,
}

/// The routes of one server.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Route indices per pattern: one pattern may have a route per method set.
    paths: matchit::Router<PathEntry>,
    regexes: Vec<(Regex, usize)>,
}

/// Why a route could not be added.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Same pattern, overlapping methods.
    #[error("duplicate route `{0}`: an earlier route has the same path and method")]
    Duplicate(String),
    /// matchit refused the pattern (bad syntax or a conflicting parameter).
    #[error("invalid or conflicting path `{pattern}`: {reason}")]
    Path {
        /// The pattern.
        pattern: String,
        /// matchit's explanation.
        reason: String,
    },
}

impl RouteTable {
    /// Builds a table. `paths` and `regexes` are in file order.
    pub fn build(paths: Vec<Route>, regexes: Vec<(Regex, Route)>) -> Result<Self, RouteError> {
        let mut table = RouteTable::default();
        let mut groups: Vec<(Arc<str>, Vec<usize>)> = Vec::new();
        for route in paths {
            let idx = table.routes.len();
            match groups.iter_mut().find(|(p, _)| *p == route.pattern) {
                Some((_, members)) => {
                    let overlaps = members.iter().any(|&i| {
                        let other = &table.routes[i];
                        match (&other.methods, &route.methods) {
                            (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
                            _ => true,
                        }
                    });
                    if overlaps {
                        return Err(RouteError::Duplicate(route.pattern.to_string()));
                    }
                    members.push(idx);
                }
                None => groups.push((route.pattern.clone(), vec![idx])),
            }
            table.routes.push(route);
        }
        for (pattern, members) in &groups {
            let entry = PathEntry {
                routes: members.clone(),
                empty_catch_all: None,
            };
            table
                .paths
                .insert(pattern.to_string(), entry)
                .map_err(|e| RouteError::Path {
                    pattern: pattern.to_string(),
                    reason: e.to_string(),
                })?;
        }
        // A catch-all also answers its bare prefix, unless a route has it;
        // the catch-all parameter is then empty.
        for (pattern, members) in &groups {
            if let Some((prefix, name)) = catch_all_prefix(pattern) {
                let entry = PathEntry {
                    routes: members.clone(),
                    empty_catch_all: Some(name),
                };
                let _ = table.paths.insert(prefix, entry);
            }
        }
        for (re, route) in regexes {
            table.regexes.push((re, table.routes.len()));
            table.routes.push(route);
        }
        Ok(table)
    }

    /// Every route: path routes in file order, then regex routes.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Finds the route for a method and a normalized path.
    pub fn lookup(&self, method: &Method, path: &str) -> Match<'_> {
        let mut allow: Vec<&Method> = Vec::new();
        if let Ok(m) = self.paths.at(path) {
            for &i in &m.value.routes {
                let route = &self.routes[i];
                if route.allows(method) {
                    let mut params: Vec<(String, String)> = m
                        .params
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect();
                    if let Some(name) = &m.value.empty_catch_all {
                        params.push((name.clone(), String::new()));
                    }
                    return Match::Found { route, params };
                }
                collect_allow(route, &mut allow);
            }
        }
        for (re, i) in &self.regexes {
            let route = &self.routes[*i];
            let Some(caps) = re.captures(path) else {
                continue;
            };
            if route.allows(method) {
                let params = caps
                    .iter()
                    .enumerate()
                    .skip(1)
                    .filter_map(|(n, c)| c.map(|c| (n.to_string(), c.as_str().to_owned())))
                    .collect();
                return Match::Found { route, params };
            }
            collect_allow(route, &mut allow);
        }
        if allow.is_empty() {
            return Match::NotFound;
        }
        let list: Vec<&str> = allow.iter().map(|m| m.as_str()).collect();
        Match::WrongMethod {
            allow: HeaderValue::try_from(list.join(", "))
                .expect("method names are valid header text"),
        }
    }
}

/// Adds a refusing route's methods to `allow` (a route with no method
/// list never refuses, so it never gets here).
fn collect_allow<'r>(route: &'r Route, allow: &mut Vec<&'r Method>) {
    for m in route.methods.iter().flatten() {
        if !allow.contains(&m) {
            allow.push(m);
        }
    }
}

/// The routes at one matchit pattern.
#[derive(Debug, Clone)]
struct PathEntry {
    routes: Vec<usize>,
    /// Set on a catch-all's bare prefix: the parameter, matched empty.
    empty_catch_all: Option<String>,
}

/// `/static/{*path}` → (`/static/`, `path`); `None` for other patterns.
fn catch_all_prefix(pattern: &str) -> Option<(String, String)> {
    let start = pattern.rfind("{*")?;
    let name = pattern.strip_suffix('}')?.get(start + 2..)?;
    Some((pattern[..start].to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::ret::Return;

    fn route(pattern: &str, methods: Option<Vec<Method>>, body: &'static str) -> Route {
        Route {
            limits: Box::default(),
            pattern: pattern.into(),
            methods,
            middleware: Arc::new([]),
            handler: Arc::new(Return::new(http::StatusCode::OK, vec![], body)),
            describe: "Return".into(),
            module: None,
            metrics: Default::default(),
        }
    }

    fn pattern_of<'a>(m: &Match<'a>) -> &'a str {
        match m {
            Match::Found { route, .. } => &route.pattern,
            other => panic!("expected a route, got {other:?}"),
        }
    }

    fn table() -> RouteTable {
        RouteTable::build(
            vec![
                route("/users/new", None, "exact"),
                route("/users/{id}", None, "param"),
                route(
                    "/files/{*rest}",
                    Some(vec![Method::GET, Method::HEAD]),
                    "catch-all",
                ),
            ],
            vec![
                (
                    Regex::new("^/users/(\\d+)/x$").unwrap(),
                    route("^/users/(\\d+)/x$", None, "re1"),
                ),
                (
                    Regex::new("^/files/").unwrap(),
                    route("^/files/", Some(vec![Method::POST]), "re2"),
                ),
            ],
        )
        .unwrap()
    }

    #[test]
    fn precedence_exact_param_catchall_regex() {
        let t = table();
        assert_eq!(
            pattern_of(&t.lookup(&Method::GET, "/users/new")),
            "/users/new"
        );
        assert_eq!(
            pattern_of(&t.lookup(&Method::GET, "/users/7")),
            "/users/{id}"
        );
        assert_eq!(
            pattern_of(&t.lookup(&Method::GET, "/files/a/b")),
            "/files/{*rest}"
        );
        assert_eq!(
            pattern_of(&t.lookup(&Method::GET, "/files/")),
            "/files/{*rest}"
        );
        let Match::Found { params, .. } = t.lookup(&Method::GET, "/files/") else {
            panic!("no route for the bare prefix")
        };
        assert_eq!(params, vec![("rest".to_owned(), String::new())]);
        assert_eq!(
            pattern_of(&t.lookup(&Method::GET, "/users/7/x")),
            "^/users/(\\d+)/x$"
        );
        // A method the path route refuses falls through to a regex that takes it.
        assert_eq!(pattern_of(&t.lookup(&Method::POST, "/files/a")), "^/files/");
        assert!(matches!(t.lookup(&Method::GET, "/nope"), Match::NotFound));
    }

    #[test]
    fn params_and_captures() {
        let t = table();
        let Match::Found { params, .. } = t.lookup(&Method::GET, "/users/42/x") else {
            panic!()
        };
        assert_eq!(params, vec![("1".to_owned(), "42".to_owned())]);
        let Match::Found { params, .. } = t.lookup(&Method::GET, "/users/42") else {
            panic!()
        };
        assert_eq!(params, vec![("id".to_owned(), "42".to_owned())]);
    }

    #[test]
    fn wrong_method_lists_allow() {
        let t = table();
        match t.lookup(&Method::DELETE, "/files/a") {
            Match::WrongMethod { allow } => assert_eq!(allow, "GET, HEAD, POST"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicates_are_refused_but_method_splits_are_not() {
        let dup = RouteTable::build(vec![route("/a", None, "1"), route("/a", None, "2")], vec![]);
        assert!(matches!(dup, Err(RouteError::Duplicate(_))));
        let split = RouteTable::build(
            vec![
                route("/a", Some(vec![Method::GET]), "1"),
                route("/a", Some(vec![Method::POST]), "2"),
            ],
            vec![],
        );
        assert!(split.is_ok());
        let conflict = RouteTable::build(
            vec![route("/u/{a}", None, "1"), route("/u/{b}", None, "2")],
            vec![],
        );
        assert!(matches!(conflict, Err(RouteError::Path { .. })));
    }
}
