//! Checkpoints: everything a run needs to continue exactly where it stood (`--resume`), in one
//! file written atomically — the model, AdamW's moments and step counts, the position in the
//! schedule (phase, epoch, batch), the history and the run's settings.
//!
//! A resumed run computes the same bits as one never interrupted: the data order, augmentation
//! and dropout are functions of (seed, epoch, batch), not of a generator's position, and the
//! optimiser's state, keyed by parameter path, is put back under the restored parameters.
//! `--resume` refuses a checkpoint of another run ([`resume_checkpoint`]).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::History;
use crate::error::{Error, Result};
use crate::model_file::{ModelMeta, STATE_TENSOR_PREFIX, SavedModel};
use crate::models::Network;

/// What a run was asked to do (`"epochs" → "3"`, `"weights" → "resnet34.pth"`…), kept in its
/// checkpoints so that `--resume` with other settings is refused with every difference named.
pub type RunSettings = BTreeMap<String, String>;

/// The [`RunSettings`] of `(name, value)` pairs.
pub fn run_settings<const N: usize>(pairs: [(&str, String); N]) -> RunSettings {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The metadata key of the training state in a checkpoint file.
pub const STATE_KEY: &str = "convlearn_training_state";

/// The tensor holding the optimiser's state (burn's burnpack record, as bytes).
const OPTIMIZER_TENSOR: &str = "convlearn.optimizer_state";

/// Where training stood when a checkpoint was written.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrainingState {
    /// Phase of the recipe (0 = frozen, 1 = unfrozen; 0 for training from scratch).
    pub phase: usize,
    /// Epochs of that phase completed.
    pub epochs_done: usize,
    /// Batches of the next epoch completed (a checkpoint written mid-epoch, by
    /// `--checkpoint-every` or an interruption; 0 at the end of an epoch).
    #[serde(default)]
    pub batches_done: usize,
    /// Each parameter's path and the id its optimiser state is stored under.
    #[serde(default)]
    pub param_ids: BTreeMap<String, u64>,
    /// The learning rate the recipe chose (so a resumed run does not search again).
    pub lr: Option<f64>,
    /// Everything recorded so far.
    pub history: History,
    /// The settings of the run that wrote the checkpoint.
    #[serde(default)]
    pub settings: RunSettings,
}

/// How often a checkpoint is written during an epoch (it always is at an epoch's end).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CheckpointEvery {
    /// After every this many batches of an epoch.
    Batches(usize),
    /// After the first batch that ends this long after the last checkpoint.
    Interval(std::time::Duration),
}

impl CheckpointEvery {
    /// Parses `N` (batches) or `Nm` / `Ns` (minutes or seconds), each at least 1.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let (digits, unit) = match s.strip_suffix('m').or_else(|| s.strip_suffix("min")) {
            Some(d) => (d, 60),
            None => match s.strip_suffix('s') {
                Some(d) => (d, 1),
                None => (s, 0),
            },
        };
        match digits.trim().parse::<u64>() {
            Ok(n) if n >= 1 && unit == 0 => Ok(Self::Batches(n as usize)),
            Ok(n) if (1..=1 << 30).contains(&n) => {
                Ok(Self::Interval(std::time::Duration::from_secs(n * unit)))
            }
            _ => Err(format!(
                "'{s}' is not a checkpoint interval: give N batches (e.g. 200) or minutes (e.g. 10m), at least 1"
            )),
        }
    }

    /// Whether a checkpoint is due after `done` batches of an epoch of `per_epoch`, `since` the last.
    pub fn due(self, done: usize, per_epoch: usize, since: std::time::Duration) -> bool {
        done < per_epoch
            && match self {
                Self::Batches(n) => done.is_multiple_of(n),
                Self::Interval(t) => since >= t,
            }
    }
}

/// What a checkpoint holds.
pub struct Checkpoint {
    /// The network and its metadata, with the parameter ids of the run that wrote it.
    pub model: SavedModel,
    /// Where training stood.
    pub state: TrainingState,
    /// The optimiser's state ([`burn::optim::ModuleOptimizer::to_record`] as bytes), when the
    /// run had taken a step.
    pub optimizer: Option<Vec<u8>>,
}

/// Writes `model`, `state` and the optimiser's state `optimizer` to `path` (atomically: a reader
/// sees the old or the new file, whole). `state.param_ids` is filled in from `model`.
pub fn write_checkpoint(
    path: &Path,
    model: &SavedModel,
    state: &mut TrainingState,
    optimizer: Option<&[u8]>,
) -> Result<()> {
    state.param_ids = param_ids(&model.network);
    let json = serde_json::to_string(state).expect("state serialises");
    let extra: Vec<(&str, &[u8])> = optimizer
        .map(|o| (OPTIMIZER_TENSOR, o))
        .into_iter()
        .collect();
    model.save_with(path, &[(STATE_KEY, json)], &extra)
}

/// Reads a checkpoint, its network on `device` under the parameter ids it was written with.
pub fn read_checkpoint(path: &Path, device: &Device) -> Result<Checkpoint> {
    let json = SavedModel::read_metadata_entry(path, STATE_KEY)?.ok_or_else(|| {
        Error::format(path, "is a model but not a checkpoint (no training state)")
    })?;
    let state: TrainingState = serde_json::from_str(&json)
        .map_err(|e| Error::format(path, format!("training state is malformed: {e}")))?;
    let mut model = SavedModel::load(path, device)?;
    model.network = restore_param_ids(model.network, &state.param_ids, path)?;
    let optimizer = SavedModel::read_state_tensor(path, OPTIMIZER_TENSOR)?;
    debug_assert!(OPTIMIZER_TENSOR.starts_with(STATE_TENSOR_PREFIX));
    if let Some(bytes) = &optimizer {
        check_optimizer_record(bytes, &model.network, path)?;
    }
    Ok(Checkpoint {
        model,
        state,
        optimizer,
    })
}

/// Module paths as burn's visitors name them (`head.linear.weight`).
#[derive(Default)]
struct Paths(Vec<String>);

impl Paths {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn current(&self) -> String {
        self.0.join(".")
    }
}

/// A float parameter: its path, id and shape.
struct ParamInfo {
    path: String,
    id: u64,
    shape: Vec<usize>,
}

struct CollectParams(Paths, Vec<ParamInfo>);

impl ModuleVisitor for CollectParams {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.0.enter(name);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.0.0.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.1.push(ParamInfo {
            path: self.0.current(),
            id: param.id.val(),
            shape: param.val().dims().to_vec(),
        });
    }
}

fn params(net: &Network) -> Vec<ParamInfo> {
    let mut v = CollectParams(Paths::default(), Vec::new());
    net.visit(&mut v);
    v.1
}

/// Every float parameter's path and id.
fn param_ids(net: &Network) -> BTreeMap<String, u64> {
    params(net).into_iter().map(|p| (p.path, p.id)).collect()
}

/// Checks an optimiser record against the network it belongs to before burn reads it (burn
/// trusts its own records and panics on a foreign one): every state tensor is an f32 of its
/// parameter's shape, every parameter state has that parameter's rank.
fn check_optimizer_record(bytes: &[u8], net: &Network, path: &Path) -> Result<()> {
    let bad = |what: String| Error::format(path, format!("the optimiser's state {what}"));
    let by_id: BTreeMap<u64, Vec<usize>> =
        params(net).into_iter().map(|p| (p.id, p.shape)).collect();
    let reader = burn_pack::Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| bad(format!("cannot be read: {e}")))?;
    let owner = |name: &str| -> Result<&Vec<usize>> {
        name.split('.')
            .next()
            .and_then(|id| id.parse::<u64>().ok())
            .and_then(|id| by_id.get(&id))
            .ok_or_else(|| bad(format!("has '{name}', of no parameter of the network")))
    };
    for (name, value) in reader.scalars() {
        let shape = owner(name)?;
        if name.ends_with(".__rank") && usize::try_from(*value).ok() != Some(shape.len()) {
            return Err(bad(format!(
                "gives '{name}' rank {value:?}, the parameter has {}",
                shape.len()
            )));
        }
    }
    for tensor in reader
        .into_tensors()
        .map_err(|e| bad(format!("cannot be read: {e}")))?
    {
        let shape = owner(&tensor.name)?;
        let id_matches = tensor
            .param_id
            .is_some_and(|id| tensor.name.starts_with(&format!("{id}.")));
        if !id_matches
            || tensor.dtype != burn::tensor::DType::F32
            || tensor.shape.as_slice() != shape.as_slice()
        {
            return Err(bad(format!(
                "has '{}' of {:?} {:?}, its parameter is f32 {shape:?}",
                tensor.name, tensor.dtype, tensor.shape
            )));
        }
    }
    Ok(())
}

struct RestoreIds<'a>(Paths, &'a BTreeMap<String, u64>, Vec<String>);

impl ModuleMapper for RestoreIds<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.0.enter(name);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.0.0.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.0.current();
        match self.1.get(&path) {
            Some(&id) => {
                let (_, tensor, mapper) = param.consume();
                Param::from_mapped_value(ParamId::from(id), tensor, mapper)
            }
            None => {
                self.2.push(path);
                param
            }
        }
    }
}

/// `net` with each parameter under the id recorded for its path (the optimiser's state is keyed
/// by those ids). A checkpoint from before ids were recorded has none: its parameters keep theirs.
fn restore_param_ids(net: Network, ids: &BTreeMap<String, u64>, path: &Path) -> Result<Network> {
    if ids.is_empty() {
        return Ok(net);
    }
    let mut mapper = RestoreIds(Paths::default(), ids, Vec::new());
    let net = net.map(&mut mapper);
    if !mapper.2.is_empty() || param_ids(&net).len() != ids.len() {
        return Err(Error::format(
            path,
            format!(
                "the checkpoint's parameter list does not match its network (not recorded: {})",
                mapper.2.join(", ")
            ),
        ));
    }
    Ok(net)
}

/// Reads the checkpoint at `path` for `--resume`: it must exist, and the run it belongs to must be
/// this one — the same network and data (`meta`, the new run's model metadata) and the same
/// `settings`. Anything else is an error listing each difference, so a resumed run never trains
/// one network under another's name or a schedule of another length.
pub fn resume_checkpoint(
    path: &Path,
    meta: &ModelMeta,
    settings: &RunSettings,
    device: &Device,
) -> Result<Checkpoint> {
    if !path.is_file() {
        return Err(Error::Invalid(format!(
            "--resume: there is no checkpoint at {} (one is written after every epoch; without \
             --resume the run starts afresh)",
            path.display()
        )));
    }
    let checkpoint = read_checkpoint(path, device)?;
    let state = &checkpoint.state;
    let mut differences = meta_differences(&checkpoint.model.meta, meta);
    let keys: std::collections::BTreeSet<&String> =
        state.settings.keys().chain(settings.keys()).collect();
    for key in keys {
        let (was, now) = (state.settings.get(key), settings.get(key));
        if was != now {
            let show = |v: Option<&String>| v.map_or("(not set)".to_string(), |v| format!("'{v}'"));
            differences.push(format!(
                "{key}: checkpoint {}, this run {}",
                show(was),
                show(now)
            ));
        }
    }
    if differences.is_empty() {
        return Ok(checkpoint);
    }
    Err(Error::Invalid(format!(
        "--resume: {} belongs to another run; nothing was trained or written. It differs in:\n  {}\n\
         Resume with the checkpoint's settings, or train afresh without --resume (or with another --save).",
        path.display(),
        differences.join("\n  ")
    )))
}

/// How the model of a checkpoint (`was`) differs from the one a new run builds (`now`).
fn meta_differences(was: &ModelMeta, now: &ModelMeta) -> Vec<String> {
    let mut out = Vec::new();
    if was.arch != now.arch {
        out.push(format!(
            "architecture: checkpoint {} ({} outputs), this run {} ({} outputs)",
            was.arch.name(),
            was.arch.classes(),
            now.arch.name(),
            now.arch.classes()
        ));
    }
    if was.classes != now.classes {
        out.push(format!(
            "classes: checkpoint {} ({}), this run {} ({})",
            was.classes.len(),
            abbreviate(&was.classes),
            now.classes.len(),
            abbreviate(&now.classes)
        ));
    }
    let (a, b) = (&was.preprocess, &now.preprocess);
    // The input size is the architecture's (from scratch) or a setting (`--size`, which may
    // change between phases), so only the channels are compared here.
    if a.channels != b.channels {
        out.push(format!(
            "input channels: checkpoint {}, this run {}",
            a.channels, b.channels
        ));
    }
    if a.normalization != b.normalization || a.crop != b.crop {
        out.push(format!(
            "input preparation (the data's statistics or the crop): checkpoint {:?} {:?}, this run {:?} {:?}",
            a.normalization, a.crop, b.normalization, b.crop
        ));
    }
    if was.multi_label != now.multi_label {
        out.push(format!(
            "labels: checkpoint {}, this run {}",
            kind(was.multi_label),
            kind(now.multi_label)
        ));
    }
    out
}

fn kind(multi_label: bool) -> &'static str {
    if multi_label {
        "several per image"
    } else {
        "one per image"
    }
}

fn abbreviate(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(4).map(String::as_str).collect();
    let more = if names.len() > 4 { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use burn::tensor::{Bytes, DType};

    use super::*;
    use crate::data::generate_shapes;
    use crate::learner::FitConfig;
    use crate::models::ModelPreset;
    use crate::recipes::scratch_learner;

    /// A checkpoint of one epoch of the small CNN on 64 shapes, and its contents.
    fn checkpoint(dir: &Path) -> (PathBuf, Checkpoint) {
        let set = generate_shapes(64, 28, 1);
        let mut learner = scratch_learner(ModelPreset::SimpleCnn, &set, 0).unwrap();
        let path = dir.join("c.safetensors");
        learner.checkpoint = Some(path.clone());
        let fit = FitConfig {
            epochs: 1,
            batch_size: 32,
            verbose: false,
            ..FitConfig::default()
        };
        learner.fit(&set, &set, &fit).unwrap();
        let read = read_checkpoint(&path, &learner.device).unwrap();
        (path, read)
    }

    /// The error of reading `path` after its optimiser state is replaced by `bytes`.
    fn error_with_optimizer(path: &Path, saved: &mut Checkpoint, bytes: &[u8]) -> String {
        write_checkpoint(path, &saved.model, &mut saved.state, Some(bytes)).unwrap();
        let device = Device::flex().autodiff();
        match read_checkpoint(path, &device) {
            Ok(_) => panic!("a foreign optimiser state was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn checkpoint_intervals_are_batches_or_minutes() {
        use std::time::Duration;
        assert_eq!(
            CheckpointEvery::parse("200"),
            Ok(CheckpointEvery::Batches(200))
        );
        let ten_minutes = CheckpointEvery::Interval(Duration::from_secs(600));
        assert_eq!(CheckpointEvery::parse("10m"), Ok(ten_minutes));
        assert_eq!(CheckpointEvery::parse("10min"), Ok(ten_minutes));
        assert_eq!(
            CheckpointEvery::parse("90s"),
            Ok(CheckpointEvery::Interval(Duration::from_secs(90)))
        );
        for bad in ["0", "0m", "-3", "1.5m", "m", "", "10h"] {
            let err = CheckpointEvery::parse(bad).unwrap_err();
            assert!(
                err.contains("batches") && err.contains("minutes"),
                "{bad}: {err}"
            );
        }
        let every_3 = CheckpointEvery::Batches(3);
        assert!(every_3.due(6, 10, Duration::ZERO) && !every_3.due(7, 10, Duration::ZERO));
        // never at an epoch's last batch: the end-of-epoch checkpoint follows
        assert!(!every_3.due(9, 9, Duration::ZERO));
        assert!(ten_minutes.due(1, 10, Duration::from_secs(601)));
        assert!(!ten_minutes.due(1, 10, Duration::from_secs(599)));
    }

    #[test]
    fn a_checkpoint_keeps_adamw_state_under_the_parameters_ids() {
        let dir = tempfile::tempdir().unwrap();
        let (_, saved) = checkpoint(dir.path());
        let ids = param_ids(&saved.model.network);
        assert_eq!(
            ids, saved.state.param_ids,
            "restored under the recorded ids"
        );
        assert_eq!((saved.state.epochs_done, saved.state.batches_done), (1, 0));
        let bytes = saved.optimizer.expect("the optimiser's state is stored");
        let reader = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes)).unwrap();
        // two moments for each of the trained parameters
        assert_eq!(reader.into_tensors().unwrap().len(), 2 * ids.len());
    }

    #[test]
    fn a_foreign_optimizer_state_is_refused_before_burn_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut saved) = checkpoint(dir.path());
        let err = error_with_optimizer(&path, &mut saved, b"not a burnpack record");
        assert!(err.contains("optimiser's state cannot be read"), "{err}");

        let (name, id) = saved
            .state
            .param_ids
            .iter()
            .map(|(n, &i)| (n.clone(), i))
            .next()
            .unwrap();
        let misshaped = burn_pack::Tensor::new(
            format!("{id}.moment_1"),
            DType::F32,
            [3],
            Some(id),
            Bytes::from_elems(vec![0f32; 3]),
        );
        let record = burn_pack::Writer::new(vec![misshaped])
            .into_bytes()
            .unwrap();
        let err = error_with_optimizer(&path, &mut saved, &record);
        assert!(
            err.contains(&format!("{id}.moment_1")) && err.contains("its parameter is f32"),
            "{name}: {err}"
        );

        let stranger = burn_pack::Tensor::new(
            "77.moment_1".into(),
            DType::F32,
            [1],
            Some(77),
            Bytes::from_elems(vec![0f32]),
        );
        let record = burn_pack::Writer::new(vec![stranger]).into_bytes().unwrap();
        let err = error_with_optimizer(&path, &mut saved, &record);
        assert!(err.contains("of no parameter of the network"), "{err}");
    }
}
