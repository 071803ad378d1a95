//! Published claims about layouts (`layout::CLAIMS`), checked against the
//! headline figures the sections put forward: for each figure, the layout
//! claimed better is set against the other on every backing each was measured
//! on, and the summary says whether this host confirms the claim. Generic:
//! nothing here knows whose figure or which layout it is.

use std::fmt::Write;

use super::section::{Headline, Section};
use super::{Report, Table};
use crate::layout::{Claim, CLAIMS};

/// Relative differences below this are ties: run-to-run noise on a loaded VM.
const TIE: f64 = 0.05;

/// How one pair of values compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The layout claimed better is better.
    Holds,
    /// The other is better.
    Contradicted,
    /// Within the noise.
    Tie,
}

/// Compares `better`'s value with `worse`'s on one figure.
pub fn outcome(better: f64, worse: f64, lower_is_better: bool) -> Outcome {
    let (b, w) = if lower_is_better {
        (better, worse)
    } else {
        (worse, better)
    };
    // b < w means the claimed-better layout wins.
    let scale = b.abs().max(w.abs());
    if scale == 0.0 || (w - b).abs() <= TIE * scale {
        Outcome::Tie
    } else if b < w {
        Outcome::Holds
    } else {
        Outcome::Contradicted
    }
}

/// One claim checked: per figure, the values and the outcome of every pair.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The claim.
    pub claim: Claim,
    /// Per figure: (figure, worse's values, better's values, outcomes).
    pub figures: Vec<FigureCheck>,
}

/// One figure of a checked claim.
#[derive(Debug, Clone)]
pub struct FigureCheck {
    /// The figure.
    pub figure: String,
    /// The other layout's values, per backing.
    pub worse: Vec<Headline>,
    /// The claimed-better layout's values, per backing.
    pub better: Vec<Headline>,
    /// Every (better, worse) pair's outcome.
    pub outcomes: Vec<Outcome>,
}

impl FigureCheck {
    /// The figure's verdict: holds or contradicted on every pair, a tie, or mixed.
    pub fn verdict(&self) -> &'static str {
        let all = |o: Outcome| self.outcomes.iter().all(|x| *x == o);
        if all(Outcome::Holds) {
            "holds"
        } else if all(Outcome::Contradicted) {
            "contradicted"
        } else if all(Outcome::Tie) {
            "tie"
        } else {
            "mixed"
        }
    }
}

/// Every claim whose two layouts both have headline figures in `report`.
pub fn check(report: &Report, sections: &[&'static (dyn Section + Sync)]) -> Vec<Checked> {
    let heads: Vec<Headline> = sections.iter().flat_map(|s| s.headlines(report)).collect();
    let mut out = Vec::new();
    for claim in CLAIMS {
        let mut figures: Vec<String> = Vec::new();
        for h in &heads {
            if (h.layout == claim.better || h.layout == claim.worse) && !figures.contains(&h.figure)
            {
                figures.push(h.figure.clone());
            }
        }
        let mut checks = Vec::new();
        for f in figures {
            let of = |layout: &str| -> Vec<Headline> {
                heads
                    .iter()
                    .filter(|h| h.figure == f && h.layout == layout)
                    .cloned()
                    .collect()
            };
            let (better, worse) = (of(claim.better), of(claim.worse));
            if better.is_empty() || worse.is_empty() {
                continue;
            }
            let outcomes = better
                .iter()
                .flat_map(|b| {
                    worse
                        .iter()
                        .map(move |w| outcome(b.value, w.value, b.lower_is_better))
                })
                .collect();
            checks.push(FigureCheck {
                figure: f,
                worse,
                better,
                outcomes,
            });
        }
        if !checks.is_empty() {
            out.push(Checked {
                claim: *claim,
                figures: checks,
            });
        }
    }
    out
}

/// The claim's overall verdict, in words, citing the figures.
pub fn verdict(c: &Checked) -> String {
    let n = c.figures.len();
    let named = |v: &str| -> Vec<String> {
        c.figures
            .iter()
            .filter(|f| f.verdict() == v)
            .map(|f| f.figure.clone())
            .collect()
    };
    let (holds, against, mixed) = (named("holds"), named("contradicted"), named("mixed"));
    let word = if holds.len() == n {
        "confirmed"
    } else if against.len() == n {
        "contradicted"
    } else if holds.len() > against.len() && against.is_empty() {
        "mostly confirmed"
    } else if holds.len() > against.len() {
        "partly confirmed"
    } else if against.len() > holds.len() {
        "not confirmed"
    } else {
        "undecided"
    };
    let mut s = format!(
        "**{word}** on this host: `{}` is better on {} of {n} figures",
        c.claim.better,
        holds.len()
    );
    if !against.is_empty() {
        let _ = write!(
            s,
            "; `{}` is better on {}",
            c.claim.worse,
            against.join("; ")
        );
    }
    if !mixed.is_empty() {
        let _ = write!(s, "; it depends on the backing for {}", mixed.join("; "));
    }
    let ties = n - holds.len() - against.len() - mixed.len();
    if ties > 0 {
        let _ = write!(s, "; {ties} within {:.0} %", TIE * 100.0);
    }
    s.push('.');
    s
}

/// The claims block of summary.md: one table and one verdict per claim.
pub fn markdown(report: &Report, sections: &[&'static (dyn Section + Sync)]) -> String {
    let checked = check(report, sections);
    if checked.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n## Claims checked on this host\n\n");
    let _ = writeln!(
        s,
        "Each published claim is set against the headline figures of this run, on every backing each layout ran \
         on (same images, interleaved). A difference under {:.0} % is a tie.",
        TIE * 100.0
    );
    for c in &checked {
        let _ = write!(s, "\n### \"{}\" ({})\n\n", c.claim.text, c.claim.source);
        let mut t = Table::new([
            "figure".to_string(),
            c.claim.worse.to_string(),
            c.claim.better.to_string(),
            "verdict".into(),
        ]);
        let cell = |hs: &[Headline]| {
            hs.iter()
                .map(|h| format!("{} ({})", h.shown, h.backing))
                .collect::<Vec<_>>()
                .join(" · ")
        };
        for f in &c.figures {
            t.row(vec![
                f.figure.clone(),
                cell(&f.worse),
                cell(&f.better),
                f.verdict().to_string(),
            ]);
        }
        s.push_str(&t.to_markdown());
        let _ = write!(s, "\n{}\n", verdict(c));
    }
    s
}

/// One line per claim for the terminal.
pub fn terminal(report: &Report, sections: &[&'static (dyn Section + Sync)]) -> String {
    check(report, sections)
        .iter()
        .map(|c| {
            format!(
                "claim \"{}\": {}\n",
                c.claim.text,
                verdict(c).replace("**", "").replace('`', "")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_respect_direction_and_noise() {
        assert_eq!(outcome(1.0, 2.0, true), Outcome::Holds);
        assert_eq!(outcome(2.0, 1.0, true), Outcome::Contradicted);
        assert_eq!(outcome(1.0, 1.03, true), Outcome::Tie);
        assert_eq!(outcome(4.0, 1.0, false), Outcome::Holds);
        assert_eq!(outcome(0.0, 0.0, true), Outcome::Tie);
    }

    #[test]
    fn verdict_counts_figures() {
        let h = |layout: &str, v: f64| Headline {
            figure: "f".into(),
            layout: layout.into(),
            backing: "ext4".into(),
            value: v,
            unit: "ns",
            shown: v.to_string(),
            lower_is_better: true,
        };
        let fig = |name: &str, o: Outcome| FigureCheck {
            figure: name.into(),
            worse: vec![h("b", 2.0)],
            better: vec![h("a", 1.0)],
            outcomes: vec![o],
        };
        let c = Checked {
            claim: CLAIMS[0],
            figures: vec![fig("x", Outcome::Holds), fig("y", Outcome::Contradicted)],
        };
        let v = verdict(&c);
        assert!(
            v.contains("undecided") && v.contains("1 of 2") && v.contains("y"),
            "{v}"
        );
        let c = Checked {
            claim: CLAIMS[0],
            figures: vec![fig("x", Outcome::Holds), fig("z", Outcome::Holds)],
        };
        assert!(verdict(&c).starts_with("**confirmed**"));
    }
}
