//! Rollouts of an agent release to many devices in waves: how the targeted devices split into
//! waves (a canary first), what a device's `release` report means for the rollout, and when a
//! wave has passed, has failed (the deployment halts) or is still going. AWS IoT Jobs' abort
//! criteria and hawkBit's group thresholds are the model.

use serde::{Deserialize, Serialize};

str_enum!(
    /// Where a deployment stands.
    DeploymentState {
        Running => "running",
        /// Stopped offering by an operator (or after a wave of a manual deployment).
        Paused => "paused",
        /// A wave failed past its threshold: nothing more is offered, the wave is rolled back.
        Halted => "halted",
        Completed => "completed",
        Cancelled => "cancelled",
    }
);

impl DeploymentState {
    /// Nothing changes a deployment in this state again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeploymentState::Halted | DeploymentState::Completed | DeploymentState::Cancelled
        )
    }
}

str_enum!(
    /// Where one device of a deployment stands.
    DeviceRollout {
        /// In a wave not started yet, or offline since its wave started.
        Pending => "pending",
        /// The offer was sent; no report yet.
        Offered => "offered",
        Downloading => "downloading",
        Downloaded => "downloaded",
        /// Staged, waiting for the window or an idle cabinet.
        Waiting => "waiting",
        Installing => "installing",
        Confirming => "confirming",
        Succeeded => "succeeded",
        /// Refused, could not install, or offline past the deadline (`reason`).
        Failed => "failed",
        /// The new version failed its trial and the cabinet went back by itself, or the
        /// deployment halted and took it back.
        RolledBack => "rolled_back",
        /// The deployment halted after it succeeded here: the version before is offered back.
        RollingBack => "rolling_back",
    }
);

impl DeviceRollout {
    /// Its part in the rollout is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeviceRollout::Succeeded | DeviceRollout::Failed | DeviceRollout::RolledBack
        )
    }

    /// A failure for the wave's error threshold.
    pub fn is_failure(self) -> bool {
        matches!(self, DeviceRollout::Failed | DeviceRollout::RolledBack)
    }

    /// The state a device's `release` report (`protocol::ReleaseProgress` as spelled) puts
    /// it in; `None` for a word this version does not know.
    pub fn from_report(state: &str) -> Option<DeviceRollout> {
        Some(match state {
            "downloading" => DeviceRollout::Downloading,
            "downloaded" => DeviceRollout::Downloaded,
            "waiting" => DeviceRollout::Waiting,
            "installing" => DeviceRollout::Installing,
            "confirming" => DeviceRollout::Confirming,
            "succeeded" => DeviceRollout::Succeeded,
            "rolled_back" => DeviceRollout::RolledBack,
            "failed" | "refused" => DeviceRollout::Failed,
            _ => return None,
        })
    }
}

/// How big a wave is: a number of devices, or a percentage of all the deployment targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaveSize {
    Devices(u32),
    Percent(u8),
}

impl WaveSize {
    /// `5` or `25%`.
    pub fn parse(s: &str) -> Result<WaveSize, String> {
        let t = s.trim();
        let bad = || format!("wave {s:?} is neither a number of devices (5) nor a share (25%)");
        match t.strip_suffix('%') {
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if (1..=100).contains(&p) => Ok(WaveSize::Percent(p)),
                _ => Err(format!("wave {s:?}: a share is 1% to 100%")),
            },
            None => match t.parse::<u32>() {
                Ok(0) => Err(format!("wave {s:?}: a wave has at least 1 device")),
                Ok(n) => Ok(WaveSize::Devices(n)),
                Err(_) => Err(bad()),
            },
        }
    }
}

/// The number of devices in each wave when `total` devices are targeted: each size in turn
/// (a share of `total`, rounded up), the last wave taking whatever is left; waves with
/// nothing left to take are dropped.
pub fn split(total: usize, sizes: &[WaveSize]) -> Vec<usize> {
    let mut left = total;
    let mut waves = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        if left == 0 {
            break;
        }
        let want = match size {
            WaveSize::Devices(n) => *n as usize,
            WaveSize::Percent(p) => (total * usize::from(*p)).div_ceil(100),
        };
        let take = if i + 1 == sizes.len() {
            left
        } else {
            want.min(left)
        };
        waves.push(take);
        left -= take;
    }
    if left > 0 {
        waves.push(left);
    }
    waves
}

/// When a wave passes and when it halts the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// A wave passes when at least this share of its devices succeeded (and soaked).
    pub success_percent: u8,
    /// A wave fails, and the deployment halts, once more than this share of it failed.
    pub max_failures_percent: u8,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            success_percent: 100,
            max_failures_percent: 0,
        }
    }
}

/// What a wave's devices say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaveVerdict {
    /// Devices are still on their way.
    Going,
    Passed,
    /// Too many failed: halt.
    Failed {
        failures: usize,
        of: usize,
    },
}

/// Judges a wave from its devices: `Some(true)` succeeded and soaked, `Some(false)` failed,
/// `None` still going. Failures past the threshold fail it at once; otherwise it is judged
/// when every device is done.
pub fn judge(outcomes: &[Option<bool>], t: Thresholds) -> WaveVerdict {
    let of = outcomes.len();
    let failures = outcomes.iter().filter(|o| **o == Some(false)).count();
    let successes = outcomes.iter().filter(|o| **o == Some(true)).count();
    if failures * 100 > usize::from(t.max_failures_percent) * of {
        return WaveVerdict::Failed { failures, of };
    }
    if outcomes.iter().any(Option::is_none) {
        return WaveVerdict::Going;
    }
    if successes * 100 >= usize::from(t.success_percent) * of {
        WaveVerdict::Passed
    } else {
        WaveVerdict::Failed { failures, of }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_split_into_a_canary_and_waves_by_count_or_share() {
        let w = |s: &[&str]| -> Vec<WaveSize> {
            s.iter()
                .map(|s| WaveSize::parse(s).expect("size"))
                .collect()
        };
        assert_eq!(split(100, &w(&["2", "25%", "100%"])), [2, 25, 73]);
        assert_eq!(split(3, &w(&["1", "50%"])), [1, 2]);
        assert_eq!(split(1, &w(&["2", "50%", "100%"])), [1]);
        // Sizes that do not reach the end: the rest is one more wave.
        assert_eq!(split(10, &w(&["1", "2"])), [1, 9]);
        assert_eq!(split(10, &w(&["1", "2", "3"])), [1, 2, 7]);
        assert_eq!(split(0, &w(&["1"])), Vec::<usize>::new());
        assert_eq!(split(5, &[]), [5]);
        for bad in ["0", "0%", "101%", "x", "-1", ""] {
            assert!(WaveSize::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_wave_passes_fails_early_or_waits() {
        let strict = Thresholds::default();
        assert_eq!(judge(&[Some(true), None], strict), WaveVerdict::Going);
        assert_eq!(
            judge(&[Some(true), Some(true)], strict),
            WaveVerdict::Passed
        );
        assert_eq!(
            judge(&[Some(false), None, None], strict),
            WaveVerdict::Failed { failures: 1, of: 3 }
        );
        let lenient = Thresholds {
            success_percent: 80,
            max_failures_percent: 20,
        };
        let mut wave = vec![Some(true); 9];
        wave.push(Some(false));
        assert_eq!(judge(&wave, lenient), WaveVerdict::Passed);
        wave[0] = Some(false);
        assert_eq!(judge(&wave, lenient), WaveVerdict::Passed);
        wave[1] = Some(false);
        assert_eq!(
            judge(&wave, lenient),
            WaveVerdict::Failed {
                failures: 3,
                of: 10
            }
        );
        assert_eq!(
            DeviceRollout::from_report("refused"),
            Some(DeviceRollout::Failed)
        );
        assert_eq!(DeviceRollout::from_report("later"), None);
    }
}
