export { helloWorkflow } from './hello.js';
export { reproductionWorkflow, stageWorkflow } from './reproduction.js';
export { suiteWorkflow } from './suite.js';
