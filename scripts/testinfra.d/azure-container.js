// Creates a container in an Azure Blob Storage account with the account's shared key, through the official
// @azure/storage-blob SDK. Usage: node azure-container.js ACCOUNT_URL CONTAINER  (key in AZURE_STORAGE_KEY,
// default: Azurite's well-known development key; the account is the URL's last path segment).
// Prints "created CONTAINER" (or "exists CONTAINER").
'use strict';
const { BlobServiceClient, StorageSharedKeyCredential } = require('@azure/storage-blob');

// Azurite's published development account key (not a secret).
const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

async function main() {
  const [url, container] = process.argv.slice(2);
  if (!url || !container) throw new Error('usage: azure-container.js ACCOUNT_URL CONTAINER');
  const account = new URL(url).pathname.split('/').filter(Boolean).pop();
  const key = process.env.AZURE_STORAGE_KEY || AZURITE_KEY;
  const client = new BlobServiceClient(url, new StorageSharedKeyCredential(account, key));
  const created = await client.getContainerClient(container).createIfNotExists();
  console.log(`${created.succeeded ? 'created' : 'exists'} ${container}`);
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
