// Reads a file outside the sample dir with $readmemh.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  reg [7:0] m [0:3];
  initial $readmemh("@CANARY@", m);
  assign y = a ^ b;
endmodule
