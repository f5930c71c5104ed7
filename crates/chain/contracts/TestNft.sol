// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// The part of ERC-721 that demls-chain reads (balanceOf, ownerOf) and that its tests drive
/// (mint, transferFrom by the owner). Anyone may mint: it is a test collection. No approvals,
/// no safe transfers, no ERC-165.
contract TestNft {
    string public constant name = "demls test NFT";
    string public constant symbol = "DTN";

    mapping(uint256 => address) private owners;
    mapping(address => uint256) private balances;

    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);

    function balanceOf(address owner) external view returns (uint256) {
        require(owner != address(0), "zero address");
        return balances[owner];
    }

    function ownerOf(uint256 tokenId) external view returns (address owner) {
        owner = owners[tokenId];
        require(owner != address(0), "no such token");
    }

    function mint(address to, uint256 tokenId) external {
        require(to != address(0), "zero address");
        require(owners[tokenId] == address(0), "already minted");
        owners[tokenId] = to;
        balances[to] += 1;
        emit Transfer(address(0), to, tokenId);
    }

    function transferFrom(address from, address to, uint256 tokenId) external {
        require(owners[tokenId] == from && msg.sender == from, "not the owner");
        require(to != address(0), "zero address");
        owners[tokenId] = to;
        balances[from] -= 1;
        balances[to] += 1;
        emit Transfer(from, to, tokenId);
    }
}
