//! A folder of labelled images on disk, read by the rules the page applies to a folder a user
//! picks (`www/trainer.js`): every file below it whose name does not start with a dot, labelled
//! with the name of the folder that holds it, and named by its path from the picked folder's
//! name on (`digits/7/img_1.png`), as the browser names it. Native only.

use std::path::{Path, PathBuf};

/// One file of the folder, not yet read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderFile {
    pub path: PathBuf,
    /// The name of the folder holding the file: its class.
    pub class_name: String,
    /// Its path from the picked folder's name on, with `/` between the parts.
    pub file_name: String,
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
                files.push(FolderFile {
                    path,
                    class_name: relative.rsplit('/').next().unwrap_or(&relative).to_string(),
                    file_name: format!("{relative}/{name}"),
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
        for dir in ["cats", "dogs/puppies", ".cache"] {
            std::fs::create_dir_all(pets.join(dir)).unwrap();
        }
        for file in [
            "cats/b.png",
            "cats/a.png",
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
        let labelled: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.class_name.as_str(), f.file_name.as_str()))
            .collect();
        assert_eq!(
            labelled,
            [
                ("cats", "pets/cats/a.png"),
                ("cats", "pets/cats/b.png"),
                ("puppies", "pets/dogs/puppies/tiny.png"),
                ("dogs", "pets/dogs/rex.jpg"),
                ("pets", "pets/loose.png"),
            ]
        );
        assert_eq!(found[0].path, pets.join("cats/a.png"));
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
