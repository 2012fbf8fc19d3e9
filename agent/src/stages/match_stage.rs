//! The `match` stage: runs nested stages, or drops, for entries whose
//! labels and line match a LogQL selector.
//!
//! Entries that do not match skip the nested stages and go on unchanged.
//! Nested stages keep their own per-file state inside this stage's.

use serde::{Deserialize, Serialize};

use super::selector::Selector;
use super::{
    BuildCtx, Entry, FileStages, FileState, Stage, StageConfig, build_stages, flush_all,
    new_states, pending_all, run, tick_all,
};
use crate::error::Error;
use crate::metrics::Counter;

/// What happens to matching entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchAction {
    /// Run the nested stages.
    #[default]
    Keep,
    /// Drop the entry.
    Drop,
}

fn default_reason() -> String {
    "match_stage".into()
}

/// Settings of the `match` stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// LogQL selector with optional line filters.
    pub selector: String,
    /// A name for logs and errors.
    #[serde(default)]
    pub pipeline_name: Option<String>,
    /// `keep` (default) or `drop`.
    #[serde(default)]
    pub action: MatchAction,
    /// Stages run on matching entries (for `keep`).
    #[serde(default)]
    pub stages: Vec<StageConfig>,
    /// Reason label for dropped entries. Default `match_stage`.
    #[serde(default = "default_reason")]
    pub drop_counter_reason: String,
}

pub(crate) struct MatchStage {
    selector: Selector,
    drop: bool,
    stages: Vec<Box<dyn Stage>>,
    dropped: Counter,
}

impl MatchStage {
    pub fn new(c: &MatchConfig, ctx: &BuildCtx<'_>) -> Result<Self, Error> {
        let name = c.pipeline_name.as_deref().unwrap_or("");
        let selector = Selector::parse(&c.selector)
            .map_err(|e| Error::Config(format!("selector {:?}: {e}", c.selector)))?;
        let drop = c.action == MatchAction::Drop;
        if drop && !c.stages.is_empty() {
            return Err(Error::Config("action drop takes no stages".into()));
        }
        if !drop && c.stages.is_empty() {
            return Err(Error::Config("action keep needs stages".into()));
        }
        let stages = build_stages(&c.stages, ctx).map_err(|e| match e {
            Error::Stage {
                index,
                stage,
                message,
            } => Error::Config(format!(
                "nested stage {index} ({stage}){}: {message}",
                if name.is_empty() {
                    String::new()
                } else {
                    format!(" of {name:?}")
                }
            )),
            other => other,
        })?;
        Ok(MatchStage {
            selector,
            drop,
            stages,
            dropped: ctx.dropped.with(&[&c.drop_counter_reason]),
        })
    }
}

fn nested<'a>(fs: &'a mut FileState, stages: &[Box<dyn Stage>]) -> &'a mut FileStages {
    if !matches!(fs, FileState::Nested(_)) {
        *fs = FileState::Nested(new_states(stages));
    }
    match fs {
        FileState::Nested(n) => n,
        // Just set above.
        _ => unreachable!("nested state was just created"),
    }
}

impl Stage for MatchStage {
    fn process(&mut self, e: &mut Entry, fs: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        if !(self.selector.matches_labels(&e.labels) && self.selector.matches_line(&e.line)) {
            return next(e);
        }
        if self.drop {
            self.dropped.inc();
            return;
        }
        let n = nested(fs, &self.stages);
        run(&mut self.stages, &mut n.0, e, next);
    }

    fn tick(
        &mut self,
        fs: &mut FileState,
        now: std::time::Instant,
        next: &mut dyn FnMut(&mut Entry),
    ) {
        if let FileState::Nested(n) = fs {
            tick_all(&mut self.stages, &mut n.0, now, next);
        }
    }

    fn flush(&mut self, fs: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        if let FileState::Nested(n) = fs {
            flush_all(&mut self.stages, &mut n.0, next);
        }
    }

    fn pending_start(&self, fs: &FileState) -> Option<u64> {
        match fs {
            FileState::Nested(n) => pending_all(&self.stages, &n.0),
            _ => None,
        }
    }

    fn reset(&mut self, fs: &mut FileState) {
        if let FileState::Nested(n) = fs {
            for (s, f) in self.stages.iter_mut().zip(n.0.iter_mut()) {
                s.reset(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn nested_stages_and_drops() {
        let (mut p, reg) = pipeline(
            r#"
- match:
    selector: '{app="api"} |= "level="'
    stages:
    - regex:
        expression: 'level=(?P<level>\w+)'
    - labels:
        level:
- match:
    selector: '{app="db"}'
    action: drop
    drop_counter_reason: db_noise
"#,
        );
        let out = run_lines(
            &mut p,
            vec![
                entry("level=warn x", &[("app", "api")]),
                entry("no level", &[("app", "api")]),
                entry("level=warn y", &[("app", "web")]),
                entry("anything", &[("app", "db")]),
            ],
        );
        let got: Vec<String> = out.iter().map(|e| e.labels.to_text()).collect();
        assert_eq!(
            got,
            vec![
                r#"{app="api", level="warn"}"#,
                r#"{app="api"}"#,
                r#"{app="web"}"#
            ]
        );
        assert!(reg.render().contains(r#"reason="db_noise"} 1"#));
    }

    #[test]
    fn errors_name_the_nested_stage() {
        let e = pipeline_err(
            "- match:\n    selector: '{a=\"b\"}'\n    pipeline_name: p1\n    stages:\n    - regex:\n        expression: '('\n",
        );
        assert!(
            e.contains("pipeline stage 0 (match)")
                && e.contains("nested stage 0 (regex) of \"p1\""),
            "{e}"
        );
        assert!(
            pipeline_err("- match:\n    selector: 'nope'\n    action: drop\n")
                .contains("parse error")
        );
        assert!(pipeline_err("- match:\n    selector: '{a=\"b\"}'\n").contains("needs stages"));
    }
}
