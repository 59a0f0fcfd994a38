// The user's own images as the page holds them before the session decodes them: classes of files
// (picked, dropped or captured from the camera) that the user adds, renames, deletes and prunes.
// It is the page's file picker, not a data set: every change sends the whole collection to the
// session again (controller.useFiles), which decodes, checks and splits it as for any upload.
// A new drop replaces the files that came from the disk, where they still are; camera frames
// exist nowhere else, so they stay until their class or they are deleted.
import { classOf, groupOf } from './trainer.js';

/** A file and its path as picked or dropped (`photos/cats/a.jpg`); for the session, also its
 * class and group. @typedef {{ file: File, path: string, className?: string, group?: string }} Entry */

export class ClassCollection {
  constructor() {
    /** Class name -> its files, in the order they came. @type {Map<string, File[]>} */
    this.classes = new Map();
    /** The frames taken from the camera. @type {Set<File>} */
    this.captures = new Set();
    /** The group of each file in one (the frames of a camera hold, the files of a group folder):
     * the split keeps a group on one side. @type {Map<File, string>} */
    this.groups = new Map();
    /** The path each picked or dropped file came with, which names it in the session's lists
     * as `siamese` names the same file; others are named `class/file`. @type {Map<File, string>} */
    this.paths = new Map();
    this.framesTaken = 0;
  }

  get size() {
    return [...this.classes.values()].reduce((sum, files) => sum + files.length, 0);
  }

  /** Picked or dropped files in place of the earlier ones from the disk, each into the class its
   * path or name carries (trainer.js's rule). @param {Entry[]} entries */
  replaceFiles(entries) {
    for (const [name, files] of this.classes) {
      const kept = files.filter((file) => this.captures.has(file));
      if (kept.length) this.classes.set(name, kept);
      else this.classes.delete(name);
    }
    this.groups = new Map([...this.groups].filter(([file]) => this.captures.has(file)));
    this.paths = new Map([...this.paths].filter(([file]) => this.captures.has(file)));
    for (const { file, path } of entries) {
      this.add(classOf(path, file.name), file);
      const group = groupOf(path);
      if (group) this.groups.set(file, group);
      if (path) this.paths.set(file, path);
    }
  }

  /** @param {string} className @param {File} file */
  add(className, file) {
    const files = this.classes.get(className) ?? [];
    files.push(file);
    this.classes.set(className, files);
  }

  /** A camera frame into `className`, named so its class survives the trip (`name/camera-7.jpg`),
   * of the group of its hold (frames of one hold are near twins: they go to one side of the split).
   * @param {string} className @param {Blob} blob @param {string} hold */
  addCapture(className, blob, hold) {
    this.framesTaken += 1;
    const file = new File([blob], `camera-${this.framesTaken}.jpg`, { type: blob.type });
    this.captures.add(file);
    this.groups.set(file, hold);
    this.add(className, file);
  }

  /** The reason a name cannot be a class's, or null. @param {string} name @param {string} [current] */
  refusal(name, current) {
    if (!name) return 'a class needs a name';
    if (name.includes('/')) return `"${name}": a class name cannot hold a "/"`;
    if (name !== current && this.classes.has(name)) return `there is a class "${name}" already`;
    return null;
  }

  /** Renames `from` (its order kept); throws the refusal when `to` cannot be a name. */
  rename(from, to) {
    const refused = this.refusal(to, from);
    if (refused) throw new Error(refused);
    this.classes = new Map([...this.classes].map(([name, files]) => [name === from ? to : name, files]));
  }

  delete(className) {
    for (const file of this.classes.get(className) ?? []) {
      this.captures.delete(file);
      this.groups.delete(file);
      this.paths.delete(file);
    }
    this.classes.delete(className);
  }

  /** Removes one file; a class left empty goes with it. */
  remove(className, file) {
    this.captures.delete(file);
    this.groups.delete(file);
    this.paths.delete(file);
    const files = (this.classes.get(className) ?? []).filter((f) => f !== file);
    if (files.length) this.classes.set(className, files);
    else this.classes.delete(className);
  }

  /** Each class with its files, each file marked when it came from the camera and with its group
   * (for a project). @returns {[string, import('./project.js').KeptFile[]][]} */
  snapshot() {
    return [...this.classes].map(([name, files]) => [name, files.map((file) => (
      { file, captured: this.captures.has(file), group: this.groups.get(file), path: this.paths.get(file) }))]);
  }

  /** The classes of a kept or loaded project in place of these. @param {[string, import('./project.js').KeptFile[]][]} classes */
  restore(classes) {
    this.classes = new Map(classes.map(([name, files]) => [name, files.map(({ file }) => file)]));
    this.captures = new Set(classes.flatMap(([, files]) => files.filter((f) => f.captured).map((f) => f.file)));
    this.groups = new Map(classes.flatMap(([, files]) => files.filter((f) => f.group).map((f) => [f.file, f.group])));
    this.paths = new Map(classes.flatMap(([, files]) => files.filter((f) => f.path).map((f) => [f.file, f.path])));
    this.framesTaken = Math.max(0, ...[...this.captures].map((file) => Number(/^camera-(\d+)/.exec(file.name)?.[1] ?? 0)));
  }

  /** Every file with its path, class and group, for controller.useFiles. @returns {Entry[]} */
  entries() {
    return [...this.classes].flatMap(([name, files]) => files.map((file) => (
      { file, path: this.paths.get(file) ?? `${name}/${file.name}`, className: name, group: this.groups.get(file) })));
  }
}
