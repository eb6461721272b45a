//! Pretrained weight files as users have them: a torchvision state dict (`.safetensors` or `.pth`),
//! optionally with a `<name>.json` beside it saying how the weights expect their input (padding
//! convention, normalisation, crop) and a `<name>.labels.txt` naming the classes.

use std::path::{Path, PathBuf};

use super::{
    ArchSpec, BackboneKind, HeadKind, HeadSpec, Network, PaddingStyle, load_named_weights,
};
use crate::data::{Crop, Normalization};
use crate::error::{Error, Result};
use crate::tensor_file::TensorFile;
use burn::tensor::Device;

/// A pretrained weights file and what it implies about its input.
pub struct PretrainedWeights {
    /// The tensors.
    pub file: TensorFile,
    /// The architecture (given, or recognised from the tensor names).
    pub backbone: BackboneKind,
    /// Padding convention the weights were trained with.
    pub padding: PaddingStyle,
    /// Input normalisation they expect (on 0..1 RGB).
    pub normalization: Normalization,
    /// The evaluation crop.
    pub crop: Crop,
    /// The input size they were trained at.
    pub native_size: usize,
    /// ImageNet class names, if a labels file sits beside the weights.
    pub labels: Option<Vec<String>>,
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!("{stem}{suffix}"))
}

impl PretrainedWeights {
    /// Opens `path`; `backbone` `None` recognises the architecture from the tensor names.
    pub fn open(path: &Path, backbone: Option<BackboneKind>) -> Result<Self> {
        let file = TensorFile::read(path)?;
        let backbone = match backbone {
            Some(b) => b,
            None => recognise(&file)?,
        };
        let mut weights = Self {
            file,
            backbone,
            padding: PaddingStyle::Torch,
            normalization: Normalization::imagenet(),
            crop: Crop::Square { fraction: 0.875 },
            native_size: 224,
            labels: None,
        };
        let json_path = sidecar(path, ".json");
        if json_path.is_file() {
            let text = std::fs::read_to_string(&json_path).map_err(|e| Error::io(&json_path, e))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::format(&json_path, format!("is not valid JSON: {e}")))?;
            if json.pointer("/padding/convention").and_then(|v| v.as_str()) == Some("tf_same") {
                weights.padding = PaddingStyle::TfSame;
            }
            let normalize = json
                .pointer("/preprocessing/normalize")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            if normalize.contains("127.5") {
                weights.normalization = Normalization {
                    mean: vec![0.5; 3],
                    std: vec![0.5; 3],
                };
            }
            let resize = json
                .pointer("/preprocessing/resize")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            if resize.contains("87.5% of each side") {
                weights.crop = Crop::EachSide { fraction: 0.875 };
            }
        }
        let labels_path = sidecar(path, ".labels.txt");
        if labels_path.is_file() {
            let text =
                std::fs::read_to_string(&labels_path).map_err(|e| Error::io(&labels_path, e))?;
            weights.labels = Some(
                text.lines()
                    .map(str::to_string)
                    .filter(|l| !l.is_empty())
                    .collect(),
            );
        }
        Ok(weights)
    }

    /// The ImageNet classifier these weights came with.
    pub fn imagenet_arch(&self) -> Result<ArchSpec> {
        let name = format!("{}.weight", self.backbone.classifier_name());
        let classes = self.file.get(&name)?.shape[0];
        Ok(ArchSpec::Pretrained {
            backbone: self.backbone,
            padding: self.padding,
            head: HeadSpec {
                kind: HeadKind::ImageNet,
                hidden: 0,
                classes,
            },
        })
    }

    /// Builds `arch` and loads the body (and, for an ImageNet head, the classifier) from the file.
    pub fn build(&self, arch: &ArchSpec, device: &Device) -> Result<Network> {
        let net = Network::new(arch, device)?;
        let imagenet = net.head_kind() == Some(HeadKind::ImageNet);
        let classifier = format!("{}.", self.backbone.classifier_name());
        let names = net.torch_names(self.backbone);
        let unused_ok = move |n: &str| !imagenet && n.starts_with(&classifier);
        load_named_weights(net, &self.file, unused_ok, names)
    }
}

/// Recognises a torchvision architecture from its parameter names.
fn recognise(file: &TensorFile) -> Result<BackboneKind> {
    let has = |n: &str| file.tensors.contains_key(n);
    if has("features.18.0.weight") {
        return Ok(BackboneKind::MobilenetV2);
    }
    let blocks = |layer: usize| {
        (0..64)
            .take_while(|i| has(&format!("layer{layer}.{i}.conv1.weight")))
            .count()
    };
    let bottleneck = has("layer1.0.conv3.weight");
    match (blocks(2), blocks(3), bottleneck) {
        (2, 2, false) => Ok(BackboneKind::Resnet18),
        (4, 6, false) => Ok(BackboneKind::Resnet34),
        (4, 6, true) => Ok(BackboneKind::Resnet50),
        (4, 23, true) => Ok(BackboneKind::Resnet101),
        (8, 36, true) => Ok(BackboneKind::Resnet152),
        _ => Err(Error::format(
            &file.path,
            "is not a torchvision resnet18/34/50/101/152 or mobilenet_v2 state dict: give --arch",
        )),
    }
}

impl PretrainedWeights {
    /// How these weights want their input at `size` pixels.
    pub fn preprocess(&self, size: usize) -> crate::data::Preprocess {
        crate::data::Preprocess {
            channels: 3,
            height: size,
            width: size,
            normalization: self.normalization.clone(),
            crop: self.crop,
        }
    }
}
