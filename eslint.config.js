import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', '.lea/', '.tools/', 'dist/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        {
          // tf.tidy walks what it returns element by element (~1 µs each): 13 s per MaskGIT decoding step once
          selector:
            "CallExpression[callee.property.name='tidy'] > ArrowFunctionExpression :matches(ArrowFunctionExpression > CallExpression.body, ArrowFunctionExpression > TSAsExpression.body > CallExpression.expression, ReturnStatement > CallExpression.argument, ReturnStatement > TSAsExpression.argument > CallExpression.expression)[callee.property.name=/^(dataSync|arraySync|from)$/]",
          message:
            'tf.tidy returning tensor values: use tidyValues (lib/compute/values.ts), which reads them after it',
        },
      ],
    },
  },
);
