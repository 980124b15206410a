export { helloWorkflow } from './hello.js';
