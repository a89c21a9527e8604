//! `troupe-componentize CORE.wasm OUT.wasm`: turns a core module built
//! against `plugins/wasm/wit` (its component type embedded by wit-bindgen)
//! into a component, adapting WASI preview 1 with the proxy adapter that
//! matches our wasmtime. This is `wasm-tools component new --adapt`,
//! without building wasm-tools (11 minutes here) in CI.

use anyhow::Context as _;
use wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_PROXY_ADAPTER;
use wit_component::ComponentEncoder;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(core), Some(out)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: troupe-componentize CORE.wasm OUT.wasm");
    };
    let module = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
    let component = ComponentEncoder::default()
        .module(&module)?
        .adapter(
            "wasi_snapshot_preview1",
            WASI_SNAPSHOT_PREVIEW1_PROXY_ADAPTER,
        )?
        .validate(true)
        .encode()
        .context("building the component")?;
    std::fs::write(&out, component).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}
