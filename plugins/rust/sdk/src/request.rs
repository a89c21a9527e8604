//! Safe views of what a hook receives: [`Request`], [`Response`], [`LogEntry`].

use troupe_abi as abi;

use crate::Host;

fn text<'a>(s: abi::Str) -> &'a str {
    // SAFETY (of the callers): every `Str` here is borrowed from the host for
    // the hook call, and the views below never outlive it.
    std::str::from_utf8(unsafe { s.as_bytes() }).unwrap_or("")
}

fn pairs<'a>(ptr: *const abi::Pair, len: usize) -> &'a [abi::Pair] {
    if len == 0 || ptr.is_null() {
        &[]
    } else {
        // SAFETY: the host passes `len` pairs valid for the call.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// A request, borrowed for one hook call.
///
/// # Example
/// ```
/// use troupe_module::{Error, Request, Response};
///
/// // In `Module::handle`, for `GET /users/{id}?name=Ann`:
/// fn handle(req: &Request<'_>, resp: &mut Response<'_>) -> Result<(), Error> {
///     let id = req.param("id").unwrap_or("?");
///     let name = req.query_param("name").unwrap_or_default();
///     let agent = req.header("User-Agent").unwrap_or("unknown");
///     resp.body(format!("{} {} {id} {name} via {agent}, {} bytes from {}\n",
///         req.method(), req.path(), req.body().len(), req.peer()));
///     Ok(())
/// }
/// ```
pub struct Request<'a> {
    raw: &'a abi::Request,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("path", &self.path())
            .finish()
    }
}

impl<'a> Request<'a> {
    #[doc(hidden)]
    pub fn from_raw(raw: &'a abi::Request) -> Self {
        Self { raw }
    }

    /// The method, e.g. `GET`.
    pub fn method(&self) -> &'a str {
        text(self.raw.method)
    }

    /// The decoded, normalized path.
    pub fn path(&self) -> &'a str {
        text(self.raw.path)
    }

    /// The raw query string, without `?`.
    pub fn query(&self) -> &'a str {
        text(self.raw.query)
    }

    /// The first value of the query parameter `name`, decoded: `+` is a
    /// space, `%XX` a byte, and bytes that are not UTF-8 read as U+FFFD.
    /// A parameter without `=` has the empty value; `None` means absent.
    /// The rules are [`query_param`](crate::query_param)'s, the same in
    /// every module language.
    ///
    /// # Example
    /// ```
    /// use troupe_module::{Error, Request, Response};
    ///
    /// // In `Module::handle`: `GET /hi?name=J%C3%BCrgen+X` greets Jürgen X.
    /// fn handle(req: &Request<'_>, resp: &mut Response<'_>) -> Result<(), Error> {
    ///     let name = req.query_param("name").unwrap_or_else(|| "world".into());
    ///     resp.body(format!("Hello, {name}!\n"));
    ///     Ok(())
    /// }
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        // The raw bytes, not `query()`: a query that is not UTF-8 still
        // has its other parameters.
        // SAFETY: borrowed from the host for the call.
        crate::query_param(unsafe { self.raw.query.as_bytes() }, name)
    }

    /// The first value of a header (names are matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        pairs(self.raw.headers, self.raw.headers_len)
            .iter()
            .find(|p| text(p.name).eq_ignore_ascii_case(name))
            .map(|p| text(p.value))
    }

    /// A route parameter: `name` in `/hello/{name}`.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        pairs(self.raw.params, self.raw.params_len)
            .iter()
            .find(|p| text(p.name) == name)
            .map(|p| text(p.value))
    }

    /// The buffered request body.
    pub fn body(&self) -> &'a [u8] {
        // SAFETY: borrowed from the host for the call.
        unsafe { self.raw.body.as_bytes() }
    }

    /// The client's `ip:port`.
    pub fn peer(&self) -> &'a str {
        text(self.raw.peer)
    }
}

/// The response being built, owned by the host. It starts as 200 with no
/// headers and an empty body; the host copies everything passed to it.
///
/// # Example
/// ```
/// use troupe_module::{Error, Response};
///
/// // In `Module::handle` or `Module::request_filter`:
/// fn not_found(resp: &mut Response<'_>) -> Result<(), Error> {
///     resp.set_status(404)
///         .header("content-type", "text/plain")
///         .header("set-cookie", "a=1")
///         .header("set-cookie", "b=2") // a second field
///         .body("no such page\n");
///     Ok(())
/// }
///
/// // In `Module::response_filter`: the status and headers, not the body.
/// fn tag(resp: &mut Response<'_>) {
///     if resp.status() < 400 {
///         resp.set_header("cache-control", "no-store");
///     }
/// }
/// ```
pub struct Response<'a> {
    host: Host,
    raw: *mut abi::Response,
    _call: std::marker::PhantomData<&'a mut ()>,
}

impl std::fmt::Debug for Response<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status())
            .finish()
    }
}

impl Response<'_> {
    #[doc(hidden)]
    pub fn from_raw(host: Host, raw: *mut abi::Response) -> Self {
        Self {
            host,
            raw,
            _call: std::marker::PhantomData,
        }
    }

    /// The status so far (200 unless set).
    pub fn status(&self) -> u16 {
        // SAFETY: `raw` is the host's response for this call.
        unsafe { (self.host.table().status)(self.raw) }
    }

    /// Sets the status.
    pub fn set_status(&mut self, status: u16) -> &mut Self {
        // SAFETY: as above.
        unsafe { (self.host.table().set_status)(self.raw, status) };
        self
    }

    /// Appends a header field (a second `set-cookie`, say).
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        // SAFETY: the host copies the borrowed strings.
        unsafe {
            (self.host.table().add_header)(
                self.raw,
                abi::Str::new(name.as_bytes()),
                abi::Str::new(value.as_bytes()),
            )
        };
        self
    }

    /// Replaces every field of a header with one value.
    pub fn set_header(&mut self, name: &str, value: &str) -> &mut Self {
        // SAFETY: the host copies the borrowed strings.
        unsafe {
            (self.host.table().set_header)(
                self.raw,
                abi::Str::new(name.as_bytes()),
                abi::Str::new(value.as_bytes()),
            )
        };
        self
    }

    /// Appends bytes to the body.
    pub fn body(&mut self, bytes: impl AsRef<[u8]>) -> &mut Self {
        // SAFETY: the host copies the borrowed bytes.
        unsafe { (self.host.table().append_body)(self.raw, abi::Str::new(bytes.as_ref())) };
        self
    }

    /// In [`crate::Module::request_filter`], before returning
    /// [`crate::Filter::Continue`]: sends the request to the upstream group
    /// `name` (a name in the config's `upstreams`) instead of its
    /// `Proxy(..)` route's. A name the config has not answers 502; a route
    /// with another handler ignores it.
    ///
    /// ```
    /// use troupe_module::{Error, Filter, Request, Response};
    ///
    /// fn canary(req: &Request<'_>, resp: &mut Response<'_>) -> Result<Filter, Error> {
    ///     if req.header("x-canary") == Some("1") {
    ///         resp.set_upstream("canary");
    ///     }
    ///     Ok(Filter::Continue)
    /// }
    /// ```
    pub fn set_upstream(&mut self, name: &str) -> &mut Self {
        // SAFETY: the host copies the borrowed string.
        unsafe { (self.host.table().set_upstream)(self.raw, abi::Str::new(name.as_bytes())) };
        self
    }

    /// In [`crate::Module::request_filter`], before returning
    /// [`crate::Filter::Continue`]: the key this request counts under in
    /// the rate-limit zones keyed by `Module` that its route applies (a
    /// user, a tenant). Those zones are checked once the route's
    /// middleware ran, before its handler; a request no filter keyed is
    /// not limited by them, and the last key set wins. `false` (nothing
    /// set) on a server older than ABI revision 2, which lacks the call.
    ///
    /// ```
    /// use troupe_module::{Error, Filter, Request, Response};
    ///
    /// fn per_tenant(req: &Request<'_>, resp: &mut Response<'_>) -> Result<Filter, Error> {
    ///     if let Some(tenant) = req.header("x-tenant") {
    ///         resp.set_rate_key(tenant);
    ///     }
    ///     Ok(Filter::Continue)
    /// }
    /// ```
    pub fn set_rate_key(&mut self, key: impl AsRef<[u8]>) -> bool {
        let table = self.host.table();
        if abi::revision(table.abi_version) < abi::REVISION_RATE_KEY {
            return false;
        }
        // SAFETY: the host copies the borrowed bytes; a table of this
        // revision has the field.
        unsafe { (table.set_rate_key)(self.raw, abi::Str::new(key.as_ref())) };
        true
    }
}

/// What the log hook sees about one finished request.
///
/// # Example
/// ```
/// use troupe_module::{LogEntry, query_param};
///
/// // In `Module::log` (with `HOOKS.log` set): the query is raw, and
/// // `query_param` decodes it as `Request::query_param` would.
/// fn log(entry: &LogEntry<'_>) {
///     let campaign = query_param(entry.query(), "utm_campaign").unwrap_or_default();
///     eprintln!("{} {} {} {}B {}us {campaign}", entry.peer(), entry.method(),
///         entry.status(), entry.bytes(), entry.duration_us());
/// }
/// ```
pub struct LogEntry<'a> {
    raw: &'a abi::LogEntry,
}

impl std::fmt::Debug for LogEntry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogEntry")
            .field("method", &self.method())
            .field("path", &self.path())
            .field("status", &self.status())
            .finish()
    }
}

impl<'a> LogEntry<'a> {
    #[doc(hidden)]
    pub fn from_raw(raw: &'a abi::LogEntry) -> Self {
        Self { raw }
    }

    /// The method.
    pub fn method(&self) -> &'a str {
        text(self.raw.method)
    }

    /// The decoded path.
    pub fn path(&self) -> &'a str {
        text(self.raw.path)
    }

    /// The raw query string.
    pub fn query(&self) -> &'a str {
        text(self.raw.query)
    }

    /// The client's `ip:port`.
    pub fn peer(&self) -> &'a str {
        text(self.raw.peer)
    }

    /// The response status.
    pub fn status(&self) -> u16 {
        self.raw.status
    }

    /// Response body bytes, when known up front.
    pub fn bytes(&self) -> u64 {
        self.raw.bytes
    }

    /// Microseconds from routing to the response head.
    pub fn duration_us(&self) -> u64 {
        self.raw.duration_us
    }
}
