//! A folder of labelled images on disk, read by the rules the page applies to a folder a user
//! picks (`www/trainer.js`): every file below it whose name does not start with a dot, labelled
//! with the name of the folder that holds it, and named by its path from the picked folder's
//! name on (`digits/7/img_1.png`), as the browser names it. A folder whose name starts with `@`
//! is a group of the class above it (`cats/@monday/a.jpg` is a cat of the group
//! `cats/@monday`): the split keeps a group's images on one side. Native only.

use std::path::{Path, PathBuf};

/// One file of the folder, not yet read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderFile {
    pub path: PathBuf,
    /// The name of the folder holding the file (or holding its group folder): its class.
    pub class_name: String,
    /// Its path from the picked folder's name on, with `/` between the parts.
    pub file_name: String,
    /// The path of its group folder, when it is in one.
    pub group: Option<String>,
}

/// The class and the group of a file at `folder` (its folder's path, `/` between the parts):
/// the folder holding it names its class, unless that folder's name starts with `@`, which makes
/// it a group of the class above it, named `class/@folder` wherever the folders were picked from.
pub fn class_and_group(folder: &str) -> (String, Option<String>) {
    let mut parts = folder.rsplit('/');
    let holding = parts.next().unwrap_or(folder);
    match parts.next() {
        Some(class) if holding.starts_with('@') => {
            (class.to_string(), Some(format!("{class}/{holding}")))
        }
        _ => (holding.to_string(), None),
    }
}

/// The files below `root`, in sorted order so every run reads them alike.
pub fn labelled_files(root: &Path) -> Result<Vec<FolderFile>, String> {
    let root_name = root
        .canonicalize()
        .ok()
        .and_then(|path| {
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| root.display().to_string());
    let mut files = Vec::new();
    let mut folders = vec![(root.to_path_buf(), root_name)];
    // A link back up the tree is read once, not forever.
    let mut seen = std::collections::HashSet::new();
    while let Some((folder, relative)) = folders.pop() {
        if !seen.insert(folder.canonicalize().unwrap_or_else(|_| folder.clone())) {
            continue;
        }
        let entries = std::fs::read_dir(&folder)
            .map_err(|err| format!("cannot read the folder {}: {err}", folder.display()))?;
        for entry in entries {
            let entry = entry
                .map_err(|err| format!("cannot read the folder {}: {err}", folder.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            // Follows links, as a browser reading the folder does.
            if path.is_dir() {
                folders.push((path, format!("{relative}/{name}")));
            } else if !name.starts_with('.') {
                let (class_name, group) = class_and_group(&relative);
                files.push(FolderFile {
                    path,
                    class_name,
                    file_name: format!("{relative}/{name}"),
                    group,
                });
            }
        }
    }
    files.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    if files.is_empty() {
        return Err(format!("no files were found in {}", root.display()));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_labelled_by_their_folder_and_hidden_ones_skipped() {
        let root = std::env::temp_dir().join(format!("siamese-folder-{}", std::process::id()));
        let pets = root.join("pets");
        for dir in ["cats/@monday", "dogs/puppies", ".cache"] {
            std::fs::create_dir_all(pets.join(dir)).unwrap();
        }
        for file in [
            "cats/b.png",
            "cats/a.png",
            "cats/@monday/c.png",
            "cats/.DS_Store",
            "dogs/rex.jpg",
            "dogs/puppies/tiny.png",
            "loose.png",
        ] {
            std::fs::write(pets.join(file), b"x").unwrap();
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(&pets, pets.join("dogs/back-up")).unwrap();
        let found = labelled_files(&pets).unwrap();
        let labelled: Vec<(&str, &str, Option<&str>)> = found
            .iter()
            .map(|f| {
                let group = f.group.as_deref();
                (f.class_name.as_str(), f.file_name.as_str(), group)
            })
            .collect();
        assert_eq!(
            labelled,
            [
                ("cats", "pets/cats/@monday/c.png", Some("cats/@monday")),
                ("cats", "pets/cats/a.png", None),
                ("cats", "pets/cats/b.png", None),
                ("puppies", "pets/dogs/puppies/tiny.png", None),
                ("dogs", "pets/dogs/rex.jpg", None),
                ("pets", "pets/loose.png", None),
            ]
        );
        assert_eq!(found[1].path, pets.join("cats/a.png"));
        let empty = root.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(
            labelled_files(&empty)
                .unwrap_err()
                .contains("no files were found")
        );
        assert!(
            labelled_files(&root.join("missing"))
                .unwrap_err()
                .contains("cannot read the folder")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
