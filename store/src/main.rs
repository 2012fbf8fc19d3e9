//! `larch-store`: the Loki-compatible log store.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("larch-store: not built yet")
}
