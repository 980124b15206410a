export { helloWorkflow } from './hello.js';
export { reproductionWorkflow } from './reproduction.js';
