use super::{Assessment, Outcome};

/// Sub-verdicts of one check, folded into one assessment: any fail fails,
/// else any unknown is unknown, else pass.
#[derive(Default)]
pub(crate) struct Parts {
    fails: Vec<String>,
    unknowns: Vec<String>,
    passes: Vec<String>,
    fixes: Vec<String>,
    pub(crate) evidence: Vec<String>,
}

impl Parts {
    pub(crate) fn fail(&mut self, summary: String, fix: String) {
        self.fails.push(summary);
        self.fixes.push(fix);
    }

    pub(crate) fn unknown(&mut self, summary: String, fix: String) {
        self.unknowns.push(summary);
        self.fixes.push(fix);
    }

    pub(crate) fn pass(&mut self, summary: String) {
        self.passes.push(summary);
    }

    pub(crate) fn finish(self) -> Assessment {
        let (outcome, summaries) = if !self.fails.is_empty() {
            (Outcome::Fail, self.fails)
        } else if !self.unknowns.is_empty() {
            (Outcome::Unknown, self.unknowns)
        } else {
            (Outcome::Pass, self.passes)
        };
        Assessment {
            outcome,
            summary: summaries.join("; "),
            evidence: self.evidence,
            remediation: (outcome != Outcome::Pass).then(|| self.fixes.join("\n")),
        }
    }
}
