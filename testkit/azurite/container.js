// Creates a blob container on an Azure Blob Storage endpoint (Azurite in
// the tests), signing with the account's shared key:
//   node container.js ACCOUNT_URL ACCOUNT KEY CONTAINER
const { BlobServiceClient, StorageSharedKeyCredential } = require("@azure/storage-blob");

const [url, account, key, container] = process.argv.slice(2);
const service = new BlobServiceClient(url, new StorageSharedKeyCredential(account, key));
service
  .getContainerClient(container)
  .createIfNotExists()
  .then(
    () => process.exit(0),
    (e) => {
      console.error(`creating container ${container}: ${e.message}`);
      process.exit(1);
    },
  );
