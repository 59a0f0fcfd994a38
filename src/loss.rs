//! The contrastive loss, exactly as the formula (y = 0 similar, y = 1 dissimilar):
//! `L = mean((1 - y) * D^2 + y * max(m - D, 0)^2)`.
//!
//! Similar pairs are pulled together (their D^2 is the cost); dissimilar pairs are pushed apart
//! until they are at least the margin m away, beyond which they cost nothing.

use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

#[derive(Config, Debug)]
pub struct ContrastiveLoss {
    #[config(default = 1.0)]
    pub margin: f32,
}

impl ContrastiveLoss {
    /// Mean loss over the batch; `distances` and `dissimilar` (1.0 or 0.0) are `[n]`.
    pub fn forward(&self, distances: Tensor<1>, dissimilar: Tensor<1>) -> Tensor<1> {
        let similar = dissimilar.clone().neg().add_scalar(1.0);
        let pull = similar * distances.clone().powi_scalar(2);
        let push = dissimilar * relu(distances.neg().add_scalar(self.margin)).powi_scalar(2);
        (pull + push).mean()
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor};

    use super::*;
    use crate::model::{DISTANCE_EPSILON, euclidean_distance};

    fn values(tensor: Tensor<1>) -> Vec<f32> {
        tensor.into_data().try_to_vec().unwrap()
    }

    fn loss_of(margin: f32, distances: &[f32], dissimilar: &[f32]) -> f32 {
        let device = Device::flex();
        let loss = ContrastiveLoss::new().with_margin(margin).forward(
            Tensor::from_floats(distances, &device),
            Tensor::from_floats(dissimilar, &device),
        );
        values(loss)[0]
    }

    #[test]
    fn similar_pairs_cost_their_squared_distance() {
        // (0.3^2 + 2^2) / 2 = (0.09 + 4) / 2
        assert!((loss_of(1.0, &[0.3, 2.0], &[0.0, 0.0]) - 2.045).abs() < 1e-6);
    }

    #[test]
    fn dissimilar_pairs_cost_only_inside_the_margin() {
        // Inside: (1 - 0.25)^2 = 0.5625. Outside (D = 1.5 > m): 0. At the margin: 0.
        assert!((loss_of(1.0, &[0.25], &[1.0]) - 0.5625).abs() < 1e-6);
        assert_eq!(loss_of(1.0, &[1.5], &[1.0]), 0.0);
        assert_eq!(loss_of(1.0, &[1.0], &[1.0]), 0.0);
    }

    #[test]
    fn batch_loss_is_the_mean_over_both_kinds() {
        // Similar D=0.5 -> 0.25; dissimilar D=0.5 -> 0.25; dissimilar D=3 -> 0; similar D=0 -> 0.
        assert!((loss_of(1.0, &[0.5, 0.5, 3.0, 0.0], &[0.0, 1.0, 1.0, 0.0]) - 0.125).abs() < 1e-6);
    }

    #[test]
    fn margin_moves_where_dissimilar_pairs_stop_costing() {
        // With m = 2, D = 1.5 is still inside: (2 - 1.5)^2 = 0.25; with m = 1 it is free.
        assert!((loss_of(2.0, &[1.5], &[1.0]) - 0.25).abs() < 1e-6);
        assert_eq!(loss_of(1.0, &[1.5], &[1.0]), 0.0);
        // Similar pairs do not depend on the margin.
        assert_eq!(loss_of(2.0, &[0.4], &[0.0]), loss_of(1.0, &[0.4], &[0.0]));
    }

    /// Loss of one pair of 2-d embeddings, through the distance, as a plain f32 (no autodiff).
    fn loss_of_embeddings(a: [f32; 2], b: [f32; 2], dissimilar: f32) -> f32 {
        let device = Device::flex();
        let d = euclidean_distance(
            Tensor::<1>::from_floats(a, &device).unsqueeze(),
            Tensor::<1>::from_floats(b, &device).unsqueeze(),
        );
        let y = Tensor::from_floats([dissimilar], &device);
        values(ContrastiveLoss::new().forward(d, y))[0]
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let device = Device::flex().autodiff();
        for (a, b, y) in [
            ([0.3, -0.2], [0.1, 0.4], 0.0), // similar
            ([0.3, -0.2], [0.1, 0.4], 1.0), // dissimilar, inside the margin (D ~ 0.63)
            ([0.9, 0.1], [0.2, 0.3], 1.0),  // dissimilar, D ~ 0.73
        ] {
            let left = Tensor::<2>::from_floats([a], &device).require_grad();
            let right = Tensor::<2>::from_floats([b], &device);
            let d = euclidean_distance(left.clone(), right);
            let loss = ContrastiveLoss::new().forward(d, Tensor::from_floats([y], &device));
            let grads = loss.backward();
            let analytic: Vec<f32> = left.grad(&grads).unwrap().into_data().try_to_vec().unwrap();

            let h = 1e-3;
            for k in 0..2 {
                let (mut plus, mut minus) = (a, a);
                plus[k] += h;
                minus[k] -= h;
                let numeric =
                    (loss_of_embeddings(plus, b, y) - loss_of_embeddings(minus, b, y)) / (2.0 * h);
                assert!(
                    (analytic[k] - numeric).abs() < 2e-3,
                    "y={y} k={k}: analytic {} vs numeric {numeric}",
                    analytic[k]
                );
            }
        }
    }

    #[test]
    fn equal_embeddings_give_a_finite_gradient() {
        let device = Device::flex().autodiff();
        for y in [0.0, 1.0] {
            let left = Tensor::<2>::from_floats([[0.5, 0.5]], &device).require_grad();
            let right = Tensor::<2>::from_floats([[0.5, 0.5]], &device);
            let d = euclidean_distance(left.clone(), right);
            assert!(values(d.clone().inner())[0] <= DISTANCE_EPSILON.sqrt() * 1.01);
            let loss = ContrastiveLoss::new().forward(d, Tensor::from_floats([y], &device));
            let grads = loss.backward();
            let grad: Vec<f32> = left.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
            assert!(grad.iter().all(|g| g.is_finite()), "y={y}: {grad:?}");
        }
    }
}
