/** The skills a gateway knows, and how a project installs them (`lobu skills ...`). */

export { STARTER_SKILLS_DIR, starterSkillNames } from "@lobu/skills";
export { type Skill, SkillCatalog, type SkillOrigin } from "./catalog.ts";
export { type AddSkillResult, addSkill, removeSkill, restoreSkills } from "./install.ts";
export { describeSource, LOCK_FILE, type LockEntry } from "./lock.ts";
export { checkNeeds, type NeedCheck, type NeedKind, unmetNeeds } from "./needs.ts";
export { PROJECT_SKILLS_DIR } from "./project.ts";
export { parseSkillMd, SKILL_FILE, type SkillManifest } from "./skill-md.ts";
export { classifySource, type SourceKind } from "./sources.ts";
