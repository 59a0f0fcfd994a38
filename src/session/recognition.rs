//! "None of the above" in the session: the classes' prototypes under the current model, how the
//! analysed test images are recognised, and the commands that change what the model recognises
//! without retraining (enrolling a class, moving the unknown distance).

use super::messages::*;
use super::{Host, Outcome, Reference, Session};
use crate::data::ImageSet;
use crate::embeddings::Embeddings;
use crate::inference::embed_images;
use crate::model_file::{EnrolledClass, ModelInfo};
use crate::open_set::{
    OpenSetScores, Prototypes, Recognition, equal_error_rate, leave_one_class_out,
};

/// The share of known images the default unknown distance rejects, on validation images (on
/// training images when the validation split is 0). Held
/// out of training, digits 8 and 9 are then mostly rejected (README); a distance chosen where
/// known classes are left out in turn would accept most of them, since the model pushed the
/// known classes apart and new things fall between.
const DEFAULT_FALSE_REJECTS: f64 = 0.05;
/// Points of the open-set (DET) curve sent to the front ends.
const OPEN_SET_CURVE_POINTS: usize = 200;

/// The unknown distance of a model that has none yet: the one that rejects
/// [`DEFAULT_FALSE_REJECTS`] of `known` images (of the classes of `prototypes`), chosen without
/// a test image or an unknown class; `fallback` when there are none.
pub(super) fn default_unknown_distance(
    prototypes: &Prototypes,
    known: &Embeddings,
    class_names: &[String],
    fallback: f32,
) -> f32 {
    leave_one_class_out(prototypes, known, class_names)
        .distance_rejecting(DEFAULT_FALSE_REJECTS)
        .unwrap_or(fallback)
}

impl Reference {
    /// The model's own, or by default the one [`default_unknown_distance`] chose on the
    /// validation images (a sample of the training images when the validation split is 0).
    fn unknown_distance(&self, info: &ModelInfo) -> f32 {
        info.unknown_distance
            .unwrap_or(self.default_unknown_distance)
    }

    /// The trained classes' prototypes, then the enrolled classes' (an error for one whose
    /// embeddings are not of the model's length).
    fn prototypes(&self, info: &ModelInfo) -> Result<Prototypes, String> {
        let mut prototypes = self.trained_prototypes.clone();
        for class in &info.enrolled {
            let rows: Vec<&[f32]> = class.embeddings.iter().map(Vec::as_slice).collect();
            prototypes.add(&class.name, &rows)?;
        }
        Ok(prototypes)
    }

    /// How the classified test images of the model's test part are recognised, with "none of
    /// the above"; None without classes or test images.
    pub(super) fn open_set(&self, info: &ModelInfo) -> Result<Option<OpenSetReport>, String> {
        let test = &self.test_part.images;
        let prototypes = self.prototypes(info)?;
        if prototypes.is_empty() || self.queries.is_empty() {
            return Ok(None);
        }
        let is_enrolled = |name: &str| info.enrolled.iter().any(|class| class.name == name);
        let mut scores = OpenSetScores::default();
        let mut enrolled = Vec::new();
        let mut unknown_classes = Vec::new();
        for (row, &index) in self.queries.iter().enumerate() {
            let class = &test.class_names[test.labels()[index]];
            let query = self.query_embeddings.row(row);
            let Some((nearest, distance)) = prototypes.nearest(query, None) else {
                return Ok(None);
            };
            if prototypes.names.contains(class) {
                let right = &prototypes.names[nearest] == class;
                scores.known.push((distance, right));
                if is_enrolled(class) {
                    enrolled.push(right);
                }
            } else {
                scores.unknown.push(distance);
                if !unknown_classes.contains(class) {
                    unknown_classes.push(class.clone());
                }
            }
        }
        let unknowns = if scores.unknown.is_empty() {
            scores = leave_one_class_out(&prototypes, &self.query_embeddings, &test.class_names);
            UnknownQueries::LeaveOneClassOut
        } else {
            unknown_classes.sort();
            UnknownQueries::HeldOut {
                classes: unknown_classes,
            }
        };
        let curve = scores.curve(OPEN_SET_CURVE_POINTS);
        Ok(Some(OpenSetReport {
            classes: prototypes.names.clone(),
            enrolled: info
                .enrolled
                .iter()
                .map(|class| EnrolledSummary {
                    name: class.name.clone(),
                    images: class.embeddings.len(),
                })
                .collect(),
            unknowns,
            known_queries: scores.known.len(),
            unknown_queries: scores.unknown.len(),
            closed_set_acc: scores.closed_set_accuracy(),
            enrolled_acc: (!enrolled.is_empty()).then(|| {
                enrolled.iter().filter(|&&right| right).count() as f64 / enrolled.len() as f64
            }),
            enrolled_queries: enrolled.len(),
            equal_error: curve.as_ref().map(|(_, equal)| *equal),
            eer: curve.as_ref().map(|(_, equal)| equal_error_rate(equal)),
            curve: curve.map(|(points, _)| points).unwrap_or_default(),
            chosen: scores.at(self.unknown_distance(info)),
        }))
    }
}

impl Session {
    pub(super) fn set_unknown_distance(&self, distance: f32, host: &mut impl Host) -> Outcome {
        if !(distance.is_finite() && distance >= 0.0) {
            return Err(format!("the unknown distance must be 0 or more, not {distance}").into());
        }
        self.update_info(host, |info| info.unknown_distance = Some(distance))
    }

    /// What an embedding is among the model's classes, when data of its image size is loaded
    /// (the trained classes' prototypes come from its training images).
    pub(super) fn recognise(
        &self,
        info: &ModelInfo,
        embedding: &[f32],
    ) -> Result<Option<Recognition>, String> {
        let Some(reference) = self.state.borrow().reference.clone() else {
            return Ok(None);
        };
        let prototypes = reference.prototypes(info)?;
        Ok(prototypes.recognise(embedding, reference.unknown_distance(info)))
    }

    /// Replaces the current model's info (enrolled classes, unknown distance) and reports "none
    /// of the above" under it; the embeddings stay valid, so nothing is embedded again.
    fn update_info(&self, host: &mut impl Host, change: impl FnOnce(&mut ModelInfo)) -> Outcome {
        let current = self.current_model().ok_or("train or load a model first")?;
        let mut info = current.info.clone();
        change(&mut info);
        let reference = self.state.borrow().reference.clone();
        let report = match reference {
            Some(reference) => reference.open_set(&info)?,
            None => None,
        }
        .ok_or("load data of the model's image size first: its classes come from the data")?;
        self.replace_info(&current, info);
        host.send(Reply::OpenSet(report));
        Ok(())
    }

    /// Enrols each class of `classes` from the embeddings of its images.
    async fn enrol(&self, classes: Vec<(String, ImageSet)>, host: &mut impl Host) -> Outcome {
        let current = self.current_model().ok_or("train or load a model first")?;
        let generation = self.generation();
        let held_out = current.info.config.held_out();
        let mut enrolled = Vec::new();
        for (name, images) in classes {
            let name = name.trim().to_string();
            if name.is_empty() {
                return Err("give the new class a name".into());
            }
            if current.info.class_names.contains(&name) && !held_out.contains(&name) {
                return Err(format!(
                    "the model was trained on {name:?} already: enrol a new class"
                )
                .into());
            }
            if images.is_empty() || images.len() > MAX_ENROL_IMAGES {
                return Err(format!(
                    "enrol a class from 1 to {MAX_ENROL_IMAGES} images, not {}",
                    images.len()
                )
                .into());
            }
            let embedded = embed_images(&current.model, &images, &current.device)
                .await
                .map_err(|e| e.to_string())?;
            enrolled.push(EnrolledClass {
                name,
                embeddings: (0..embedded.len())
                    .map(|i| embedded.row(i).to_vec())
                    .collect(),
            });
        }
        if self.generation() != generation {
            return Err(
                "another model came while the images were embedded: enrol them again".into(),
            );
        }
        self.update_info(host, |info| {
            for class in enrolled {
                // Enrolling a class again adds to its images.
                match info
                    .enrolled
                    .iter_mut()
                    .find(|known| known.name == class.name)
                {
                    Some(known) => known.embeddings.extend(class.embeddings),
                    None => info.enrolled.push(class),
                }
            }
        })
    }

    pub(super) async fn enrol_images(
        &self,
        class_name: String,
        images: Vec<ImageRef>,
        host: &mut impl Host,
    ) -> Outcome {
        let current = self.current_model().ok_or("train or load a model first")?;
        let mut set = ImageSet::new(current.info.shape, vec![class_name.clone()]);
        for image in images {
            set.push(&self.resolve_image(image, current.info.shape)?.0, 0);
        }
        self.enrol(vec![(class_name, set)], host).await
    }

    /// Enrols each held-out class not enrolled yet from its first `per_class` training images.
    pub(super) async fn enrol_held_out(&self, per_class: usize, host: &mut impl Host) -> Outcome {
        let (current, dataset) = self.model_and_data()?;
        let waiting: Vec<&String> = current
            .info
            .config
            .held_out()
            .iter()
            .filter(|name| {
                !current
                    .info
                    .enrolled
                    .iter()
                    .any(|class| &class.name == *name)
            })
            .collect();
        if waiting.is_empty() {
            return Err(
                "no held-out class is left to enrol: hold classes out of training first".into(),
            );
        }
        let train = &dataset.train;
        let classes = waiting
            .into_iter()
            .map(|name| {
                let first: Vec<usize> = (0..train.len())
                    .filter(|&i| &train.class_names[train.labels()[i]] == name)
                    .take(per_class)
                    .collect();
                (name.clone(), train.subset(&first))
            })
            .collect();
        self.enrol(classes, host).await
    }
}
