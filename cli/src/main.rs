//! `larch`: query a Larch (or Loki) store from the terminal.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("larch: not built yet")
}
