//! `larch-agent`: the node log agent.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("larch-agent: not built yet")
}
