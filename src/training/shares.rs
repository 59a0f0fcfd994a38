//! Data-parallel training on the CPU: helpers (in the browser, Web Workers, each with its own
//! wasm instance and no shared memory) compute the gradients of a share of every batch at the
//! coordinator's weights; the coordinator sums the shares' gradients, its own first, then the
//! helpers' in order, and takes the one Adam step. A helper keeps no state between steps, so
//! its weights cannot drift from the coordinator's, and a run matches one worker's up to the
//! order of the sums.

use std::future::Future;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};

use super::{TrainError, backend_error, batch_gradients, micro_batches};
use crate::batch::HostBatch;
use crate::data::ImageShape;
use crate::loss::ContrastiveLoss;
use crate::model::{SiameseNet, SiameseNetConfig};

/// One helper's work for one step. The coordinator lends the parameters (`&[f32]`); a job that
/// crosses to a thread or a worker owns them (`Vec<f32>`).
pub struct ShareJob<P: AsRef<[f32]>> {
    /// The model's parameters, in [`parameter_vector`]'s order.
    pub parameters: P,
    pub batch: HostBatch,
    pub margin: f32,
    /// The share's part of the batch (its pairs over the batch's): its gradients and loss are
    /// scaled by it, so that the shares' sum is the batch's mean.
    pub scale: f32,
}

impl ShareJob<&[f32]> {
    /// The job with a copy of the parameters, to be sent away.
    pub fn into_owned(self) -> ShareJob<Vec<f32>> {
        ShareJob {
            parameters: self.parameters.to_vec(),
            batch: self.batch,
            margin: self.margin,
            scale: self.scale,
        }
    }
}

/// A helper's answer: the gradients of its share's scaled loss, in [`parameter_vector`]'s
/// order, and that loss.
pub struct ShareGradients {
    pub gradients: Vec<f32>,
    pub loss: f32,
}

/// The workers that take a share of every batch besides the coordinator.
pub trait BatchHelpers {
    /// Helpers that are working; one whose last job failed is dropped here, between steps.
    fn count(&mut self) -> usize;
    /// Hands `job` to helper `helper` (below [`count`](Self::count)) and returns at once.
    fn start(&mut self, helper: usize, job: ShareJob<&[f32]>);
    /// The answer to the job `helper` was last given.
    fn finish(&mut self, helper: usize) -> impl Future<Output = Result<ShareGradients, String>>;
}

/// Training on the coordinator alone.
pub struct NoHelpers;

impl BatchHelpers for NoHelpers {
    fn count(&mut self) -> usize {
        0
    }

    fn start(&mut self, _: usize, _: ShareJob<&[f32]>) {
        unreachable!("there are no helpers to start")
    }

    async fn finish(&mut self, _: usize) -> Result<ShareGradients, String> {
        unreachable!("there are no helpers to finish")
    }
}

/// Natively: helpers on threads of their own, for the command line's `--workers`.
#[cfg(not(target_arch = "wasm32"))]
pub struct ThreadHelpers {
    helpers: Vec<ThreadHelper>,
}

#[cfg(not(target_arch = "wasm32"))]
struct ThreadHelper {
    jobs: std::sync::mpsc::Sender<ShareJob<Vec<f32>>>,
    answers: std::sync::mpsc::Receiver<Result<ShareGradients, String>>,
    failed: bool,
}

#[cfg(not(target_arch = "wasm32"))]
impl ThreadHelpers {
    pub fn new(count: usize) -> Self {
        let helpers = (0..count)
            .map(|_| {
                let (jobs, job_queue) = std::sync::mpsc::channel::<ShareJob<Vec<f32>>>();
                let (answer, answers) = std::sync::mpsc::channel();
                // The thread ends when the helpers are dropped (its queue closes).
                std::thread::spawn(move || {
                    let mut worker = ShareWorker::default();
                    for job in job_queue {
                        let result = pollster::block_on(worker.gradients(job));
                        if answer.send(result.map_err(|err| err.to_string())).is_err() {
                            break;
                        }
                    }
                });
                ThreadHelper {
                    jobs,
                    answers,
                    failed: false,
                }
            })
            .collect();
        Self { helpers }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl BatchHelpers for ThreadHelpers {
    fn count(&mut self) -> usize {
        self.helpers.retain(|helper| !helper.failed);
        self.helpers.len()
    }

    fn start(&mut self, helper: usize, job: ShareJob<&[f32]>) {
        let helper = &mut self.helpers[helper];
        helper.failed = helper.jobs.send(job.into_owned()).is_err();
    }

    async fn finish(&mut self, helper: usize) -> Result<ShareGradients, String> {
        let helper = &mut self.helpers[helper];
        let answer = match helper.failed {
            true => Err("its thread ended".to_string()),
            false => helper
                .answers
                .recv()
                .unwrap_or_else(|_| Err("its thread ended".to_string())),
        };
        helper.failed = answer.is_err();
        answer
    }
}

/// What a helper runs: its model, built once per image shape, takes each job's parameters.
pub struct ShareWorker {
    device: Device,
    model: Option<(ImageShape, SiameseNet)>,
}

impl Default for ShareWorker {
    fn default() -> Self {
        Self {
            device: Device::flex().autodiff(),
            model: None,
        }
    }
}

impl ShareWorker {
    pub async fn gradients(
        &mut self,
        job: ShareJob<impl AsRef<[f32]>>,
    ) -> Result<ShareGradients, TrainError> {
        let shape = job.batch.shape();
        let model = match self.model.take() {
            Some((built_for, model)) if built_for == shape => model,
            _ => SiameseNetConfig::for_shape(shape)
                .init(&self.device)
                .map_err(TrainError::Settings)?,
        };
        let model = with_parameters(model, job.parameters.as_ref())?;
        let loss_fn = ContrastiveLoss::new().with_margin(job.margin);
        let parts = micro_batches(job.batch, shape, &self.device);
        let (grads, loss) = batch_gradients(&model, parts, &loss_fn, job.scale);
        let gradients = gradient_vector(&model, &grads).await?;
        let loss: f32 = loss.into_scalar_async().await.map_err(backend_error)?;
        let loss = loss * job.scale;
        self.model = Some((shape, model));
        Ok(ShareGradients { gradients, loss })
    }
}

/// A batch whose shares the helpers are computing; the coordinator's own share waits for
/// [`finish_shares`].
pub(crate) struct StartedShares {
    own: HostBatch,
    /// The helpers' shares, in the order they were handed out.
    shares: Vec<HostBatch>,
    pairs: usize,
}

/// Hands each helper its share of `batch` at `model`'s weights, and keeps the first share for
/// the coordinator.
pub(crate) async fn start_shares(
    model: &SiameseNet,
    batch: HostBatch,
    loss_fn: &ContrastiveLoss,
    helpers: &mut impl BatchHelpers,
) -> Result<StartedShares, TrainError> {
    let pairs = batch.len();
    let mut shares = batch.split(pairs.div_ceil(helpers.count() + 1));
    let own = shares.remove(0);
    let parameters = match shares.is_empty() {
        true => Vec::new(),
        false => parameter_vector(model).await?,
    };
    for (helper, share) in shares.iter().enumerate() {
        helpers.start(
            helper,
            ShareJob {
                parameters: &parameters[..],
                batch: share.clone(),
                margin: loss_fn.margin,
                scale: share.len() as f32 / pairs as f32,
            },
        );
    }
    Ok(StartedShares { own, shares, pairs })
}

/// The gradients of the mean loss of the started batch and that loss: the coordinator computes
/// its own share, then adds the helpers' in order. A helper that failed has its share computed
/// here.
pub(crate) async fn finish_shares(
    model: &SiameseNet,
    started: StartedShares,
    loss_fn: &ContrastiveLoss,
    device: &Device,
    helpers: &mut impl BatchHelpers,
) -> Result<(GradientsParams, f32), TrainError> {
    let StartedShares { own, shares, pairs } = started;
    let shape = own.shape();
    let scale = |share: &HostBatch| share.len() as f32 / pairs as f32;
    let own_scale = scale(&own);
    let (grads, loss) =
        batch_gradients(model, micro_batches(own, shape, device), loss_fn, own_scale);
    let own_loss: f32 = loss.into_scalar_async().await.map_err(backend_error)?;
    let mut loss = own_loss * own_scale;
    let mut sum = GradientsAccumulator::new();
    sum.accumulate(model, grads);
    for (helper, share) in shares.into_iter().enumerate() {
        match helpers.finish(helper).await {
            Ok(answer) => {
                sum.accumulate(
                    model,
                    gradients_from_vector(model, &answer.gradients, device)?,
                );
                loss += answer.loss;
            }
            Err(why) => {
                warn_helper_failed(&why);
                let share_scale = scale(&share);
                let parts = micro_batches(share, shape, device);
                let (grads, share_loss) = batch_gradients(model, parts, loss_fn, share_scale);
                sum.accumulate(model, grads);
                let share_loss: f32 = share_loss
                    .into_scalar_async()
                    .await
                    .map_err(backend_error)?;
                loss += share_loss * share_scale;
            }
        }
    }
    Ok((sum.grads(), loss))
}

/// Says on the console (stderr natively) that a helper failed: the run goes on without it.
fn warn_helper_failed(why: &str) {
    let message =
        format!("siamese-web: a training helper failed ({why}); its share is computed here");
    #[cfg(target_arch = "wasm32")]
    web_sys::console::warn_1(&message.into());
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{message}");
}

/// Every parameter of `model`, flattened, in the order [`Module::visit`] meets them.
pub async fn parameter_vector(model: &SiameseNet) -> Result<Vec<f32>, TrainError> {
    struct Collect(Vec<Tensor<1>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().detach().flatten(0, D - 1));
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    read_vector(collect.0).await
}

/// The gradients of every parameter of `model`, in [`parameter_vector`]'s order.
async fn gradient_vector(
    model: &SiameseNet,
    grads: &GradientsParams,
) -> Result<Vec<f32>, TrainError> {
    struct Collect<'a>(&'a GradientsParams, Vec<Tensor<1>>, Option<String>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            match self.0.get::<D>(param.id) {
                Some(grad) => self.1.push(grad.flatten(0, D - 1)),
                None => self.2 = Some(format!("no gradient for parameter {}", param.id)),
            }
        }
    }
    let mut collect = Collect(grads, Vec::new(), None);
    model.visit(&mut collect);
    if let Some(missing) = collect.2 {
        return Err(TrainError::Backend(missing));
    }
    read_vector(collect.1).await
}

async fn read_vector(parts: Vec<Tensor<1>>) -> Result<Vec<f32>, TrainError> {
    Tensor::cat(parts, 0)
        .into_data_async()
        .await
        .map_err(backend_error)?
        .try_into_vec::<f32>()
        .map_err(backend_error)
}

/// Refuses a vector that is not one value per parameter of `model`.
fn check_length(model: &SiameseNet, values: &[f32], what: &str) -> Result<(), TrainError> {
    let expected = model.num_params();
    match values.len() == expected {
        true => Ok(()),
        false => Err(TrainError::Backend(format!(
            "{} {what} for a model of {expected} parameters",
            values.len()
        ))),
    }
}

/// `model` with the parameters of `values` (in [`parameter_vector`]'s order), still trainable.
fn with_parameters(model: SiameseNet, values: &[f32]) -> Result<SiameseNet, TrainError> {
    check_length(&model, values, "parameter values")?;
    struct Load<'a>(&'a [f32]);
    impl ModuleMapper for Load<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(|old| {
                let dims = old.dims();
                let (values, rest) = self.0.split_at(dims.iter().product());
                self.0 = rest;
                Tensor::from_data(TensorData::new(values.to_vec(), dims), &old.device())
                    .require_grad()
            })
        }
    }
    Ok(model.map(&mut Load(values)))
}

/// A helper's gradient vector as the gradients of `model`'s parameters on `device`.
fn gradients_from_vector(
    model: &SiameseNet,
    values: &[f32],
    device: &Device,
) -> Result<GradientsParams, TrainError> {
    check_length(model, values, "gradient values")?;
    struct Register<'a>(&'a [f32], Device, GradientsParams);
    impl ModuleVisitor for Register<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let dims = param.shape().dims::<D>();
            let (values, rest) = self.0.split_at(dims.iter().product());
            self.0 = rest;
            let grad = Tensor::<D>::from_data(TensorData::new(values.to_vec(), dims), &self.1);
            self.2.register(param.id, grad);
        }
    }
    let mut register = Register(
        values,
        device.clone().without_autodiff(),
        GradientsParams::new(),
    );
    model.visit(&mut register);
    Ok(register.2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::tests::{digits_and_their_pairs, untrained_model};

    /// Helpers in this process, each with its own [`ShareWorker`], answering at once; one of
    /// them may be made to fail.
    pub(crate) struct InProcessHelpers {
        workers: Vec<ShareWorker>,
        answers: Vec<Option<Result<ShareGradients, String>>>,
        failing: Option<usize>,
    }

    impl InProcessHelpers {
        pub(crate) fn new(count: usize) -> Self {
            Self {
                workers: (0..count).map(|_| ShareWorker::default()).collect(),
                answers: (0..count).map(|_| None).collect(),
                failing: None,
            }
        }
    }

    impl BatchHelpers for InProcessHelpers {
        fn count(&mut self) -> usize {
            self.workers.len()
        }

        fn start(&mut self, helper: usize, job: ShareJob<&[f32]>) {
            let answer = match self.failing == Some(helper) {
                true => Err("it was made to fail".to_string()),
                false => pollster::block_on(self.workers[helper].gradients(job))
                    .map_err(|err| err.to_string()),
            };
            self.answers[helper] = Some(answer);
        }

        async fn finish(&mut self, helper: usize) -> Result<ShareGradients, String> {
            self.answers[helper].take().expect("a started helper")
        }
    }

    #[test]
    fn shared_gradients_are_those_of_the_whole_batch() {
        let (digits, pairs) = digits_and_their_pairs();
        let (device, model) = untrained_model(digits.shape);
        let loss_fn = ContrastiveLoss::new().with_margin(1.5);
        let batch = || HostBatch::new(&digits, &pairs[..37]);
        let run = |helpers: &mut InProcessHelpers| {
            let (grads, loss) = pollster::block_on(async {
                let started = start_shares(&model, batch(), &loss_fn, helpers).await?;
                finish_shares(&model, started, &loss_fn, &device, helpers).await
            })
            .unwrap();
            (
                pollster::block_on(gradient_vector(&model, &grads)).unwrap(),
                loss,
            )
        };
        let (alone, alone_loss) = run(&mut InProcessHelpers::new(0));
        let largest = alone.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        assert!(alone_loss > 0.0 && largest > 0.0);
        let mut failing = InProcessHelpers::new(3);
        failing.failing = Some(1);
        for (helpers, mut helpers_given) in [
            ("two helpers", InProcessHelpers::new(2)),
            ("three, one failing", failing),
        ] {
            let (shared, shared_loss) = run(&mut helpers_given);
            assert!(
                (shared_loss - alone_loss).abs() < 1e-5 * alone_loss,
                "{helpers}: loss {shared_loss} against {alone_loss}"
            );
            assert_eq!(shared.len(), alone.len());
            for (s, a) in shared.iter().zip(&alone) {
                assert!((s - a).abs() < 1e-4 * largest, "{helpers}: {s} against {a}");
            }
        }
    }

    #[test]
    fn a_helper_refuses_parameters_of_another_model() {
        let (digits, pairs) = digits_and_their_pairs();
        let job = ShareJob {
            parameters: &[0.0; 10],
            batch: HostBatch::new(&digits, &pairs[..4]),
            margin: 1.0,
            scale: 1.0,
        };
        let err = pollster::block_on(ShareWorker::default().gradients(job))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("10 parameter values for a model of"),
            "{err}"
        );
    }
}
