//! The sequence models of `omen-sequence` (issue 10), in burn: a multivariate LSTM
//! **forecaster** over the canary and baseline metric windows, giving quantiles of each metric's
//! next steps (pinball loss), and an LSTM **failure classifier** over the same window, giving the
//! probability that the deployment fails.
//!
//! - [`kernel`]: the CPU LSTM (forward and backpropagation through time over slices), the
//!   efficient formulation: one product for the input projection of all steps, one per step for
//!   the four gates.
//! - [`model`]: the burn modules and their `#[derive(Config)]`s.
//! - [`train`]: `SequenceParams -> check() -> ValidSequenceParams`, the fits (Adam, cosine
//!   schedule, early stopping, seed), and [`predict_rows`], the one inference path.
//! - [`detect`]: anomaly detection over single metric series (`omen detect`): the series
//!   forecaster's residual detector, rolling z-score and EWMA baselines, alarms and their
//!   event-level evaluation.
//! - [`rollback`]: predictive rollback, the probability that a metric's SLO is breached within
//!   the horizon, from the forecast quantiles.
//! - [`SequenceModel`]: the fitted pair with the window layout and the normalisation statistics,
//!   its artifact (`to_bytes`/`from_bytes`, checksummed), and the predictions `omen-serve` and
//!   batch evaluation share.
//!
//! Windows are encoded by `omen_features::feature::sequence` (the layout, the mask, the
//! normalisation), so training and serving see the same numbers.

pub mod detect;
pub mod kernel;
pub mod model;
pub mod rollback;
pub mod train;

use burn::config::Config;
use burn::module::Module;
use burn::optim::AdamConfig;
use burn::store::ModuleRecord;
use burn::tensor::Device;

use crate::error::Error;
use omen_features::feature::sequence::{Normalisation, SequenceInput, SequenceLayout, encode_window, sequence_schema};
use omen_features::feature::DeploymentWindows;
pub use model::{Classifier, ClassifierConfig, Forecaster, ForecasterConfig, SequenceLstm, SequenceLstmConfig};
pub use train::{
    Engine, EpochReport, ForecastSet, LabelledSet, SequenceParams, Sequences, TrainHistory, ValidSequenceParams,
    pinball_loss, predict_rows,
};

/// The training configuration, saved as JSON beside the weights (in the artifact, and as
/// `config.json` by `omen train sequence --out`): both models' configs, the optimiser, the
/// schedule and the seed.
#[derive(Config, Debug)]
pub struct SequenceTrainingConfig {
    pub forecaster: ForecasterConfig,
    pub classifier: ClassifierConfig,
    pub optimizer: AdamConfig,
    pub learning_rate: f64,
    pub min_learning_rate: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub patience: usize,
    pub seed: u64,
    pub threads: usize,
}

/// Artifact format version (the `format` of a registry version is `omen-sequence/<this>`).
/// Version 2 added the series detector (optional); version 1 artifacts are still read.
pub const FORMAT_VERSION: u32 = 2;
const MAGIC: &[u8; 8] = b"OMENSEQ\0";

/// The artifact's JSON header.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Header {
    format: u32,
    config: serde_json::Value,
    layout: SequenceLayout,
    normalisation: Normalisation,
    forecaster_bytes: u64,
    classifier_bytes: u64,
    /// The series detector's layout and forecaster config (format 2; absent before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detector: Option<DetectorHeader>,
    #[serde(default)]
    detector_bytes: u64,
    /// The calibration of the classifier's log-odds (a temperature: `Platt` with b = 0), fitted
    /// on the validation checkpoints (absent in older artifacts: their probabilities are the
    /// classifier's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    calibration: Option<crate::calibrate::Platt>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct DetectorHeader {
    layout: omen_features::feature::series::SeriesLayout,
    config: serde_json::Value,
}

/// The fitted sequence models with what reading a window takes: the layout and the
/// normalisation statistics of the training data.
#[derive(Debug, Clone)]
pub struct SequenceModel {
    pub config: SequenceTrainingConfig,
    pub layout: SequenceLayout,
    pub normalisation: Normalisation,
    forecaster: Forecaster,
    classifier: Classifier,
    fw: (kernel::LstmWeights, model::DenseWeights),
    cw: (kernel::LstmWeights, model::DenseWeights),
    /// The anomaly detector of `omen detect` (models trained before it have none).
    detector: Option<detect::SeriesDetector>,
    /// The calibration of the classifier's log-odds (models trained before it have none).
    calibration: Option<crate::calibrate::Platt>,
}

/// The forecast of one metric: `quantiles[step][k]` is the quantile `levels[k]` of the canary's
/// value `step + 1` steps after the window, in the metric's units.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MetricForecast {
    pub metric: String,
    pub levels: Vec<f64>,
    pub quantiles: Vec<Vec<f64>>,
}

/// The sequence models' reading of one canary window ([`SequenceModel::assess`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Assessment {
    /// The LSTM classifier's failure probability (temperature-scaled on the validation
    /// checkpoints when the model has a calibration; a second opinion beside the GBDT's, which
    /// the policy decides on).
    pub failure_probability: f64,
    /// The window's end (µs) and step (µs): forecast step `k` ends at `end + (k + 1) · step_us`.
    pub end: i64,
    pub step_us: i64,
    pub steps_with_data: usize,
    /// Metrics of the model without a sample in the window (NODATA; their forecasts come from
    /// the other metrics alone and no breach is read from them).
    pub missing: Vec<String>,
    pub forecasts: Vec<MetricForecast>,
    /// The metrics with an SLO, and the probability it is breached within the horizon.
    pub breaches: Vec<SloBreach>,
}

/// The forecast breach of one metric's upper bound.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SloBreach {
    pub metric: String,
    pub limit: f64,
    /// The largest of the horizon's per-step breach probabilities.
    pub probability: f64,
    /// The forecast step (1-based) where it is largest.
    pub step: usize,
}

impl SequenceModel {
    /// Assembles a fitted model (the modules on any device; they are kept on the CPU).
    pub fn new(
        config: SequenceTrainingConfig,
        layout: SequenceLayout,
        normalisation: Normalisation,
        forecaster: Forecaster,
        classifier: Classifier,
    ) -> crate::Result<SequenceModel> {
        let channels = layout.channels();
        if config.forecaster.lstm.d_input != channels || config.classifier.lstm.d_input != channels {
            return Err(Error::invalid("layout", format!("the layout has {channels} channels, the models take {}", config.forecaster.lstm.d_input)));
        }
        if config.forecaster.metrics != layout.metrics.len() || normalisation.metrics.len() != layout.metrics.len() {
            return Err(Error::invalid("layout", "the forecaster, the layout and the normalisation disagree on the metrics"));
        }
        let fw = (forecaster.lstm.weights(), forecaster.head.weights());
        let cw = (classifier.lstm.weights(), classifier.head.weights());
        Ok(SequenceModel { config, layout, normalisation, forecaster, classifier, fw, cw, detector: None, calibration: None })
    }

    /// The same model with its classifier's probabilities calibrated by `platt` (on the
    /// log-odds).
    pub fn with_calibration(mut self, platt: Option<crate::calibrate::Platt>) -> SequenceModel {
        self.calibration = platt;
        self
    }

    /// The classifier's calibration, when it has one.
    pub fn calibration(&self) -> Option<&crate::calibrate::Platt> {
        self.calibration.as_ref()
    }

    /// The same model with the series detector of `omen detect`.
    pub fn with_detector(mut self, detector: detect::SeriesDetector) -> SequenceModel {
        self.detector = Some(detector);
        self
    }

    /// The series detector, when the model was trained with one.
    pub fn detector(&self) -> Option<&detect::SeriesDetector> {
        self.detector.as_ref()
    }

    pub fn forecaster(&self) -> &Forecaster {
        &self.forecaster
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Encodes the window ending at `end` of a deployment that started at `started_at`.
    pub fn encode(&self, windows: &DeploymentWindows, end: i64, started_at: i64) -> SequenceInput {
        encode_window(&self.layout, &self.normalisation, windows, end, started_at)
    }

    fn check_window(&self, x: &[f32]) -> crate::Result<()> {
        let expected = self.layout.window * self.layout.channels();
        if x.len() != expected {
            return Err(Error::invalid(
                "window",
                format!("{} values, the model takes {} steps × {} channels = {expected}", x.len(), self.layout.window, self.layout.channels()),
            ));
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("window", "a value is NaN or infinite (encode windows with omen_features::feature::sequence)"));
        }
        Ok(())
    }

    fn as_sequences(&self, x: &[f32]) -> Sequences {
        Sequences { steps: self.layout.window, channels: self.layout.channels(), x: x.to_vec() }
    }

    /// Forecasts of every window of `x`, normalised units, `[n, horizon, metrics, quantiles]`;
    /// the quantiles of each target are sorted (so they never cross).
    pub fn forecast_batch(&self, x: &Sequences) -> Vec<f32> {
        let rows: Vec<usize> = (0..x.len()).collect();
        let mut out = predict_rows(&self.fw.0, &self.fw.1, x, &rows);
        let nq = self.config.forecaster.quantiles.len();
        for q in out.chunks_exact_mut(nq) {
            q.sort_by(f32::total_cmp);
        }
        out
    }

    /// Failure probabilities of every window of `x`, calibrated when the model has a calibration.
    pub fn failure_probability_batch(&self, x: &Sequences) -> Vec<f64> {
        self.failure_probabilities(&self.failure_logits_batch(x))
    }

    /// Failure probabilities from the classifier's log-odds ([`Self::failure_logits_batch`]),
    /// calibrated when the model has a calibration.
    pub fn failure_probabilities(&self, z: &[f64]) -> Vec<f64> {
        match &self.calibration {
            Some(c) => z.iter().map(|&z| c.predict(z)).collect(),
            None => z.iter().map(|&z| 1.0 / (1.0 + (-z).exp())).collect(),
        }
    }

    /// The classifier's log-odds of every window of `x`, before calibration.
    pub fn failure_logits_batch(&self, x: &Sequences) -> Vec<f64> {
        let rows: Vec<usize> = (0..x.len()).collect();
        predict_rows(&self.cw.0, &self.cw.1, x, &rows).into_iter().map(|z| z as f64).collect()
    }

    /// The forecast of one encoded window, per metric, in the metrics' units.
    pub fn forecast(&self, input: &SequenceInput) -> crate::Result<Vec<MetricForecast>> {
        self.check_window(&input.values)?;
        let z = self.forecast_batch(&self.as_sequences(&input.values));
        let f = &self.config.forecaster;
        let (m, nq) = (f.metrics, f.quantiles.len());
        Ok(self
            .layout
            .metrics
            .iter()
            .enumerate()
            .map(|(i, name)| MetricForecast {
                metric: name.clone(),
                levels: f.quantiles.clone(),
                quantiles: (0..f.horizon)
                    .map(|s| {
                        (0..nq).map(|k| input.centre[i] + input.scale[i] * z[(s * m + i) * nq + k] as f64).collect()
                    })
                    .collect(),
            })
            .collect())
    }

    /// The forecast of the metric named `metric`; an error naming it when the model does not
    /// know it.
    pub fn forecast_metric(&self, input: &SequenceInput, metric: &str) -> crate::Result<MetricForecast> {
        let i = self.layout.index_of(metric).map_err(|e| Error::invalid(format!("metric `{metric}`"), e.to_string()))?;
        Ok(self.forecast(input)?.swap_remove(i))
    }

    /// The probability that the deployment fails, from one encoded window.
    pub fn failure_probability(&self, input: &SequenceInput) -> crate::Result<f64> {
        self.check_window(&input.values)?;
        Ok(self.failure_probability_batch(&self.as_sequences(&input.values))[0])
    }

    /// What the sequence models read in the window ending at `end` of a canary that started at
    /// `started_at`: the classifier's failure probability, every metric's forecast, and for each
    /// metric with an upper bound in `slo` (and data in the window) the probability that the
    /// bound is breached within the horizon. `omen-serve`'s answers and `omen evaluate`'s replay
    /// both come from here. `None` when no step of the window has data: there is nothing to
    /// read, and a forecast from padding alone would be a guess.
    pub fn assess(
        &self,
        windows: &DeploymentWindows,
        end: i64,
        started_at: i64,
        slo: &std::collections::BTreeMap<String, f64>,
    ) -> crate::Result<Option<Assessment>> {
        let input = self.encode(windows, end, started_at);
        if input.steps_with_data == 0 {
            return Ok(None);
        }
        let failure_probability = self.failure_probability(&input)?;
        let forecasts = self.forecast(&input)?;
        let breaches = forecasts
            .iter()
            .filter(|f| !input.missing.contains(&f.metric))
            .filter_map(|f| {
                let limit = *slo.get(&f.metric)?;
                let (per_step, probability) =
                    rollback::breach_probability(f, &rollback::Slo { metric: f.metric.clone(), max: Some(limit), min: None });
                let step = per_step.iter().position(|p| *p == probability).unwrap_or(0) + 1;
                Some(SloBreach { metric: f.metric.clone(), limit, probability, step })
            })
            .collect();
        Ok(Some(Assessment {
            failure_probability,
            end,
            step_us: self.layout.step_us,
            steps_with_data: input.steps_with_data,
            missing: input.missing,
            forecasts,
            breaches,
        }))
    }

    /// The artifact: magic, format version, a JSON header (the training config, the layout, the
    /// normalisation statistics), the two burnpack weight records, and the BLAKE3 hash of all
    /// that. Parameter ids come from the seed, so a seed gives byte-identical artifacts.
    pub fn to_bytes(&self) -> Vec<u8> {
        let f = self.forecaster.clone().into_record().into_bytes().expect("burnpack of an in-memory record");
        let c = self.classifier.clone().into_record().into_bytes().expect("burnpack of an in-memory record");
        let d = self.detector.as_ref().map(detect::SeriesDetector::record_bytes).unwrap_or_default();
        let header = Header {
            format: FORMAT_VERSION,
            config: serde_json::to_value(&self.config).expect("config to json"),
            layout: self.layout.clone(),
            normalisation: self.normalisation.clone(),
            forecaster_bytes: f.len() as u64,
            classifier_bytes: c.len() as u64,
            detector: self.detector.as_ref().map(|d| DetectorHeader {
                layout: d.layout,
                config: serde_json::to_value(&d.config).expect("config to json"),
            }),
            detector_bytes: d.len() as u64,
            calibration: self.calibration,
        };
        let header = serde_json::to_vec(&header).expect("header to json");
        let mut out = Vec::with_capacity(48 + header.len() + f.len() + c.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&f);
        out.extend_from_slice(&c);
        out.extend_from_slice(&d);
        let hash = blake3::hash(&out);
        out.extend_from_slice(hash.as_bytes());
        out
    }

    /// Reads an artifact of [`SequenceModel::to_bytes`]: the checksum and the format are checked
    /// before anything is parsed; the weights must fit the configuration's shapes.
    pub fn from_bytes(bytes: &[u8]) -> crate::Result<SequenceModel> {
        let bad = |m: String| Error::Artifact { message: m };
        if bytes.len() < 8 + 4 + 8 + 32 || &bytes[..8] != MAGIC {
            return Err(bad("not an omen-sequence model (bad magic or too short)".into()));
        }
        let (body, hash) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != hash {
            return Err(bad("omen-sequence checksum mismatch: the file is corrupt or truncated".into()));
        }
        let version = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
        if version != 1 && version != FORMAT_VERSION {
            return Err(bad(format!("omen-sequence format {version}, this omen reads {FORMAT_VERSION}")));
        }
        let header_len = u64::from_le_bytes(body[12..20].try_into().expect("8 bytes")) as usize;
        let rest = &body[20..];
        if header_len > rest.len() {
            return Err(bad("omen-sequence header longer than the file".into()));
        }
        let header: Header = serde_json::from_slice(&rest[..header_len]).map_err(|e| bad(format!("omen-sequence header: {e}")))?;
        let config: SequenceTrainingConfig =
            serde_json::from_value(header.config).map_err(|e| bad(format!("omen-sequence config: {e}")))?;
        let weights = &rest[header_len..];
        let (fl, cl, dl) = (header.forecaster_bytes as usize, header.classifier_bytes as usize, header.detector_bytes as usize);
        if fl.checked_add(cl).and_then(|n| n.checked_add(dl)) != Some(weights.len()) || (dl > 0) != header.detector.is_some() {
            return Err(bad("omen-sequence weight sections do not match the file length".into()));
        }
        let device = cpu_device();
        let mut rng = model::SplitMix(0);
        let load = |b: &[u8]| {
            ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(b.to_vec()))
                .map_err(|e| bad(format!("omen-sequence weights: {e:?}")))
        };
        let forecaster = config
            .forecaster
            .init(&device, &mut rng)
            .try_load_record(load(&weights[..fl])?)
            .map_err(|e| bad(format!("omen-sequence forecaster weights: {e:?}")))?;
        let classifier = config
            .classifier
            .init(&device, &mut rng)
            .try_load_record(load(&weights[fl..fl + cl])?)
            .map_err(|e| bad(format!("omen-sequence classifier weights: {e:?}")))?;
        let model = SequenceModel::new(config, header.layout, header.normalisation, forecaster, classifier)?.with_calibration(header.calibration);
        let Some(d) = header.detector else { return Ok(model) };
        let dconfig: ForecasterConfig =
            serde_json::from_value(d.config).map_err(|e| bad(format!("omen-sequence detector config: {e}")))?;
        let dforecaster = dconfig
            .init(&device, &mut rng)
            .try_load_record(load(&weights[fl + cl..])?)
            .map_err(|e| bad(format!("omen-sequence detector weights: {e:?}")))?;
        Ok(model.with_detector(detect::SeriesDetector::new(d.layout, dconfig, dforecaster)?))
    }
}

impl SequenceModel {
    /// The registry's `format` of this artifact.
    pub fn format() -> String {
        format!("omen-sequence/{FORMAT_VERSION}")
    }

    /// Loads a model from the registry: the artifact's bytes were checked against the version's
    /// record ([`crate::registry::VerifiedArtifact`]); here the format it was registered with and
    /// the input schema hash the version records must match the artifact's own layout.
    pub fn from_verified(artifact: &crate::registry::VerifiedArtifact) -> crate::Result<SequenceModel> {
        let v = artifact.version();
        if v.artifact.format != Self::format() && v.artifact.format != "omen-sequence/1" {
            return Err(Error::Artifact {
                message: format!("`{}` version {} is a `{}` artifact, not `{}`", v.name, v.version, v.artifact.format, Self::format()),
            });
        }
        let model = SequenceModel::from_bytes(artifact.bytes())?;
        let hash = sequence_schema(&model.layout).hash;
        if hash != v.schema.hash {
            return Err(Error::SchemaMismatch { expected: v.schema.hash.clone(), found: hash });
        }
        Ok(model)
    }
}

/// The CPU device the fitted models live on.
#[allow(deprecated)]
pub fn cpu_device() -> Device {
    Device::ndarray()
}

#[cfg(test)]
mod tests;
