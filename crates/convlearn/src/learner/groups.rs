//! Layer groups: which parameters train, at which rate, and which BatchNorms keep their statistics.
//!
//! A pretrained network has three groups — early body, late body, head. `freeze_to(n)` freezes the
//! groups before `n` (their weights get no gradient and their BatchNorms run in eval mode);
//! `bn_freeze` additionally runs every unfrozen body BatchNorm in eval mode (running statistics fixed)
//! while its scale and shift still train.

use burn::module::{Flag, Module, ModuleMapper, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::tensor::Tensor;

use crate::models::{GroupLayout, Network, PathStack};

struct Freezer {
    layout: GroupLayout,
    frozen_before: usize,
    bn_freeze: bool,
    stack: PathStack,
}

impl ModuleMapper for Freezer {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.push(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let group = self.layout.group_of(&self.stack.path());
        param.set_require_grad(group >= self.frozen_before)
    }

    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
        if self.stack.leaf().1 != "Struct:BatchNorm" {
            return flag;
        }
        let group = self.layout.group_of(&self.stack.path());
        let training =
            group >= self.frozen_before && (self.layout.is_head(group) || !self.bn_freeze);
        flag.with_value(training)
    }
}

/// Freezes the layer groups before `frozen_before` and applies `bn_freeze` to the body.
pub fn set_trainable(net: Network, frozen_before: usize, bn_freeze: bool) -> Network {
    let layout = net.layout();
    net.map(&mut Freezer {
        layout,
        frozen_before,
        bn_freeze,
        stack: PathStack::default(),
    })
}

struct GroupIds {
    layout: GroupLayout,
    stack: PathStack,
    ids: Vec<Vec<ParamId>>,
}

impl ModuleVisitor for GroupIds {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.push(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let group = self.layout.group_of(&self.stack.path());
        self.ids[group].push(param.id);
    }
}

/// The parameters of each layer group, for per-group learning rates.
pub fn group_params(net: &Network) -> Vec<ParamGroup> {
    let layout = net.layout();
    let mut v = GroupIds {
        layout,
        stack: PathStack::default(),
        ids: vec![Vec::new(); layout.num_groups()],
    };
    net.visit(&mut v);
    v.ids.into_iter().map(ParamGroup::from_ids).collect()
}
